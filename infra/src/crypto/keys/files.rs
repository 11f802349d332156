//! Key files on disk: the keys directory (mode 0700), one PKCS#8 PEM file
//! per Ed25519 key (mode 0600), named so that lexical order is age. A keys
//! directory anyone else can write to, a symlink, or a stray file refuses
//! the start: a planted key would sign tokens.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};
use zeroize::Zeroizing;

use super::{Ed25519Key, generate_ed25519, thumbprint};

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";
const FILE_PREFIX: &str = "ed25519-";
/// The file of the data key, in the same directory (see `crypto::data_key`).
pub(crate) const DATA_KEY_FILE: &str = "data.key";
const FILE_TIME: &[FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");
/// `yyyymmddThhmmssZ`.
const FILE_TIME_LEN: usize = 16;
const FILE_KID_PREFIX_LEN: usize = 8;

/// Group- or other-write bits.
const OPEN_WRITE: u32 = 0o022;

/// Checks the keys directory, creating it (and its parents) with mode 0700
/// when it is missing.
///
/// Anyone who can write to the directory can plant a key that then signs
/// tokens, so the start is refused when it is a symlink, not a directory, or
/// writable by group or others. Readable by group or others is warned about.
pub(crate) fn ensure_key_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => bail!(
            "refusing to start: the signing key directory {} is a symlink; \
             point PORTCULLIS_DATA_DIR at the real directory",
            dir.display()
        ),
        Ok(meta) if meta.is_dir() => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & OPEN_WRITE != 0 {
                bail!(
                    "refusing to start: the signing key directory {} is writable by group \
                     or others (mode {mode:o}); run `chmod 700 {}`",
                    dir.display(),
                    dir.display()
                );
            }
            if mode & 0o077 != 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    mode = format_args!("{mode:o}"),
                    "the signing key directory is open to group or others; expected mode 700"
                );
            }
            Ok(())
        }
        Ok(_) => bail!("signing key path {} is not a directory", dir.display()),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            // The mode is set at creation (parents included) so the
            // directory is never open, even for an instant.
            match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
                Ok(()) => Ok(()),
                Err(error) => Err(error)
                    .with_context(|| format!("creating signing key directory {}", dir.display())),
            }
        }
        Err(error) => {
            Err(error).with_context(|| format!("reading signing key directory {}", dir.display()))
        }
    }
}

/// The key files of `dir`, oldest first.
///
/// The directory may hold only our own key files: regular files (not
/// symlinks) named `ed25519-*.pem`, writable by their owner alone, plus the
/// hidden temporary files a rotation writes (`.ed25519-*.pem.tmp`, skipped).
/// Anything else refuses the start, naming the entry.
pub(super) fn key_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("listing signing keys in {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing signing keys in {}", dir.display()))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            bail!(
                "refusing to start: the signing key directory {} holds {:?}, whose name is \
                 not UTF-8; only ed25519-*.pem key files belong there",
                dir.display(),
                entry.file_name()
            );
        };
        if name.starts_with(&format!(".{FILE_PREFIX}")) && name.ends_with(".pem.tmp") {
            continue;
        }
        // The data key lives beside the signing keys; `data_key.rs` checks it.
        if name == DATA_KEY_FILE || name == format!(".{DATA_KEY_FILE}.tmp") {
            continue;
        }
        if !(name.starts_with(FILE_PREFIX) && name.ends_with(".pem")) {
            bail!(
                "refusing to start: the signing key directory {} holds {name:?}, which is \
                 not a key file (ed25519-*.pem); move it elsewhere",
                dir.display()
            );
        }
        check_key_file(&path)?;
        files.push(path);
    }
    files.sort();
    Ok(files)
}

/// A key file must be a regular file, not a symlink, and writable by its
/// owner alone.
fn check_key_file(path: &Path) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(path)
        .with_context(|| format!("reading signing key {}", path.display()))?;
    if meta.file_type().is_symlink() {
        bail!(
            "refusing to start: the signing key {} is a symlink; only regular key files \
             are loaded",
            path.display()
        );
    }
    if !meta.is_file() {
        bail!(
            "refusing to start: the signing key {} is not a regular file",
            path.display()
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & OPEN_WRITE != 0 {
        bail!(
            "refusing to start: the signing key {} is writable by group or others \
             (mode {mode:o}); run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

pub(super) fn read_key_file(path: &Path) -> anyhow::Result<Ed25519Key> {
    check_key_file(path)?;
    let meta = fs::symlink_metadata(path)
        .with_context(|| format!("reading signing key {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:o}"),
            "a signing key file is readable by group or others; expected mode 600"
        );
    }
    let contents = Zeroizing::new(
        fs::read(path).with_context(|| format!("reading signing key {}", path.display()))?,
    );
    let pkcs8 = pem_decode(&contents).with_context(|| {
        format!(
            "signing key {} is not a PEM \"PRIVATE KEY\" (PKCS#8)",
            path.display()
        )
    })?;
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|rejected| {
        anyhow!(
            "signing key {} is not an Ed25519 PKCS#8 key: {rejected}",
            path.display()
        )
    })?;
    let public = pair.public_key().as_ref().to_vec();
    Ok(Ed25519Key {
        kid: thumbprint(&public),
        pkcs8,
        public,
    })
}

/// Writes a new key whose file name sorts after every key in `existing`,
/// and returns its path and kid.
pub(super) fn create_key_file(
    dir: &Path,
    existing: &[PathBuf],
) -> anyhow::Result<(PathBuf, String)> {
    let key = generate_ed25519()?;
    // Two rotations within one second, or a clock set back, must still leave
    // the new key newest by name.
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let created = existing
        .iter()
        .filter_map(|path| file_time(path))
        .max()
        .map_or(now, |latest| now.max(latest + Duration::SECOND));
    let stamp = created
        .format(FILE_TIME)
        .context("formatting the key file timestamp")?;
    let kid_prefix = key.kid.get(..FILE_KID_PREFIX_LEN).unwrap_or(&key.kid);
    let name = format!("{FILE_PREFIX}{stamp}-{kid_prefix}.pem");
    let path = dir.join(&name);
    let temporary = dir.join(format!(".{name}.tmp"));

    let pem = pem_encode(&key.pkcs8);
    let written = (|| -> std::io::Result<()> {
        // Created with its final mode: never readable by others, even briefly.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()
    })();
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(error).with_context(|| format!("writing signing key {}", temporary.display()));
    }
    // The rename makes the key appear whole or not at all, so a crash never
    // leaves a truncated key for the next start to trip over.
    fs::rename(&temporary, &path)
        .with_context(|| format!("moving signing key into place at {}", path.display()))?;
    if let Err(error) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), %error, "could not sync the signing key directory");
    }
    Ok((path, key.kid))
}

/// The creation time encoded in a key file name, if it follows our naming.
pub(super) fn file_time(path: &Path) -> Option<OffsetDateTime> {
    let name = path.file_name()?.to_str()?;
    let stamp = name.strip_prefix(FILE_PREFIX)?.get(..FILE_TIME_LEN)?;
    PrimitiveDateTime::parse(stamp, FILE_TIME)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

pub(super) fn pem_encode(der: &[u8]) -> Zeroizing<String> {
    let body = Zeroizing::new(STANDARD.encode(der));
    // Sized up front so no reallocation leaves a copy of the key behind.
    let mut pem = Zeroizing::new(String::with_capacity(
        PEM_BEGIN.len() + PEM_END.len() + body.len() + body.len() / 64 + 4,
    ));
    pem.push_str(PEM_BEGIN);
    pem.push('\n');
    for (index, c) in body.chars().enumerate() {
        if index > 0 && index % 64 == 0 {
            pem.push('\n');
        }
        pem.push(c);
    }
    pem.push('\n');
    pem.push_str(PEM_END);
    pem.push('\n');
    pem
}

pub(super) fn pem_decode(contents: &[u8]) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let text = std::str::from_utf8(contents).context("the file is not text")?;
    let body = text
        .trim()
        .strip_prefix(PEM_BEGIN)
        .and_then(|rest| rest.strip_suffix(PEM_END))
        .context("missing the PRIVATE KEY begin or end line")?;
    let compact: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let der = STANDARD
        .decode(compact.as_bytes())
        .context("the PEM body is not base64")?;
    Ok(Zeroizing::new(der))
}
