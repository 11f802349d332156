//! The files of an embedded SQLite database: a private data directory (mode
//! 0700) and database files only their owner can read (mode 0600). The
//! database holds password hashes and the audit trail.
//!
//! The database file is created here, with its final mode, before sqlx opens
//! it; SQLite gives the `-wal` and `-shm` files it creates the mode of the
//! database file. Files left by an older version with a wider mode are
//! narrowed to 0600 (they are ours); an existing data directory is left as
//! the operator made it, with a warning when others can enter it.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Creates `dir` (and missing parents) with mode 0700, or warns when an
/// existing one is open to group or others.
///
/// # Errors
/// When the directory cannot be created or read.
pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    mode = format_args!("{mode:o}"),
                    "the data directory is open to group or others; expected mode 700"
                );
            }
            Ok(())
        }
        Ok(_) => anyhow::bail!("data directory {} is not a directory", dir.display()),
        Err(error) if error.kind() == ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating data directory {}", dir.display())),
        Err(error) => {
            Err(error).with_context(|| format!("reading data directory {}", dir.display()))
        }
    }
}

/// Creates the SQLite file `path` with mode 0600 if it is missing, and
/// narrows it and its `-wal`/`-shm` files to 0600 if they are wider.
///
/// # Errors
/// When a file cannot be created or its mode read or set.
pub fn prepare_sqlite_file(path: &Path) -> anyhow::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {}
        Err(error) => {
            return Err(error)
                .with_context(|| format!("creating database file {}", path.display()));
        }
    }
    for file in [
        path.to_owned(),
        sidecar(path, "-wal"),
        sidecar(path, "-shm"),
    ] {
        let meta = match fs::metadata(&file) {
            Ok(meta) => meta,
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("reading database file {}", file.display()));
            }
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).with_context(|| {
                format!("narrowing database file {} to mode 600", file.display())
            })?;
            tracing::warn!(
                file = %file.display(),
                was = format_args!("{mode:o}"),
                "narrowed a database file to mode 600"
            );
        }
    }
    Ok(())
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
