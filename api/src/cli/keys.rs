//! `portcullis keys`: print a new key or secret, or add a signing key to the
//! data directory.

use clap::Subcommand;
use portcullis_api::settings::Settings;
use portcullis_infra::crypto::{
    SigningKeys, generate_data_key, generate_ed25519_pem, generate_hs256_secret,
};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Print a new key (Ed25519 PKCS#8 PEM) or, with --hs256, a new secret.
    Generate {
        /// Print a random 256-bit secret for PORTCULLIS_JWT_SECRET instead.
        #[arg(long, conflicts_with = "data_key")]
        hs256: bool,
        /// Print a random 256-bit data key for PORTCULLIS_DATA_KEY instead
        /// (it encrypts TOTP seeds; every instance needs the same one).
        #[arg(long)]
        data_key: bool,
    },
    /// Add a new signing key to the data directory; it signs from the next
    /// start on, and older keys keep verifying until removed.
    Rotate,
}

/// Runs `command`.
///
/// # Errors
/// When a key cannot be made, or the settings or the key directory are bad.
pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate { hs256, data_key } => {
            if data_key {
                println!("{}", generate_data_key());
            } else if hs256 {
                println!("{}", generate_hs256_secret());
            } else {
                print!("{}", generate_ed25519_pem()?);
            }
            Ok(())
        }
        KeysCommand::Rotate => {
            let settings = Settings::from_env()?;
            let kid = SigningKeys::rotate_ed25519(&settings.data_dir.join("keys"))?;
            println!("{kid}");
            eprintln!("new signing key {kid} added; restart instances to sign with it");
            Ok(())
        }
    }
}
