//! `tpm-hmac create`: a new HMAC key, generated inside the TPM, or with `--recovery` generated
//! outside, imported, and shown once so it can be restored or programmed into a YubiKey.

use keepassxc_tpm::{recovery, Algorithm, KeyInfo, KeySpec, PersistentHandle, Secret};

use crate::error::CliError;
use crate::output::{self, KeyJson};
use crate::CliWorker;

#[derive(clap::Args)]
pub struct Args {
    /// Generate the secret outside the TPM and show it once (hex and a recovery code), so the
    /// key can be re-imported after a TPM reset or programmed into a YubiKey slot as a twin
    #[arg(long)]
    recovery: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// What `create` and `import` share.
#[derive(clap::Args)]
pub struct KeyArgs {
    /// Persistent handle to store the key at (default: first free of 0x81000100-0x810001ff)
    #[arg(long, value_parser = super::parse_handle, conflicts_with = "key_file")]
    pub handle: Option<PersistentHandle>,
    /// Keep the key in this new TSS2 PRIVATE KEY file instead of a persistent handle: it takes no
    /// slot of the TPM's few, and works only with this TPM
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<std::path::PathBuf>,
    /// HMAC hash: sha1 (20-byte responses, what KeePassXC and YubiKeys use) or sha256
    #[arg(long, default_value = "sha1")]
    pub algorithm: Algorithm,
    /// Bind the key to the boot state: SHA-256 PCRs, e.g. 7 (Secure Boot) or 0,2,7; the key
    /// then answers only while those PCRs hold the values they hold now
    #[arg(long, value_name = "LIST", value_parser = parse_pcr_list)]
    pub pcrs: Option<PcrList>,
    /// Protect the key with a PIN, asked on the terminal; the TPM rate-limits wrong PINs (its
    /// dictionary-attack protection). Without a PIN the key is exempt from that lockout.
    #[arg(long)]
    pub pin: bool,
    /// Read the new PIN from FILE instead of the terminal
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<std::path::PathBuf>,
    /// The kind of YubiKey slot to be a twin of: variable (challenges of any length, what
    /// `ykman otp chalresp` programs) or fixed (a slot that always hashes all 64 padded bytes)
    #[arg(long, value_name = "MODE", default_value = "variable")]
    pub yubikey_mode: keepassxc_tpm::SlotMode,
    /// A name for the key, shown by `list` and in KeePassXC's key list (at most 32 characters,
    /// no brackets)
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
    /// Print the new key as JSON
    #[arg(long)]
    pub json: bool,
}

/// PCR indices, sorted. (A plain `Vec<u8>` would make clap expect several values.)
#[derive(Clone)]
pub struct PcrList(Vec<u8>);

fn parse_pcr_list(text: &str) -> Result<PcrList, String> {
    keepassxc_tpm::pcr::parse_pcrs(text).map(PcrList)
}

impl KeyArgs {
    /// What to make; a new PIN is asked for (or read) here, before any TPM work.
    pub fn spec(&self) -> Result<KeySpec, CliError> {
        let pin = if self.pin || self.pin_file.is_some() {
            Some(crate::pin::read_new(self.pin_file.as_deref())?)
        } else {
            None
        };
        let pcrs = self.pcrs.clone().map(|p| p.0).unwrap_or_default();
        let label = self.label.as_deref().map(keepassxc_tpm::check_label).transpose()?;
        Ok(KeySpec {
            handle: self.handle,
            algorithm: self.algorithm,
            pcrs,
            pin,
            yubikey_mode: self.yubikey_mode,
            label,
            ..KeySpec::default()
        })
    }
}

pub fn run(tpm: &CliWorker, args: Args) -> Result<(), CliError> {
    let spec = args.key.spec()?;
    let file = args.key.key_file.clone();
    if args.recovery {
        let secret = Secret::generate(args.key.algorithm.digest_len())?;
        let (key, secret) = tpm.run(move |tpm| {
            match &file {
                Some(path) => tpm.import_file_key(&spec, &secret, path),
                None => tpm.import_key(&spec, &secret),
            }
            .map(|key| (key, secret))
        })?;
        show_recovery(&secret);
        report(&key, args.key.json);
        return Ok(());
    }
    let key = tpm.run(move |tpm| match &file {
        Some(path) => tpm.create_file_key(&spec, path),
        None => tpm.create_key(&spec),
    })?;
    eprintln!(
        "warning: this key was generated inside the TPM and cannot be backed up: a database that needs it \
         opens only on this computer, and a TPM reset loses it. Use `create --recovery` for a key you can restore."
    );
    report(&key, args.key.json);
    Ok(())
}

/// Shown once, on the terminal (stderr), never stored by us.
fn show_recovery(secret: &Secret) {
    let hex = zeroize::Zeroizing::new(hex::encode(secret.bytes()));
    let code = recovery::encode(secret.bytes());
    eprintln!(
        "RECOVERY SECRET - shown only this once. Write it down and keep it away from this computer.\n  \
         recovery code: {}\n  hex:           {}\n\
         Restore it into a TPM with `tpm-hmac import --secret-file FILE` (FILE holding the code or the hex),\n\
         or program a YubiKey twin into its slot 2 with `ykman otp chalresp 2 <hex>` (add --touch to require\n\
         a touch; this replaces what slot 2 holds).",
        code.as_str(),
        hex.as_str()
    );
}

/// Prints a new key: its handle, or the JSON object `list --json` prints.
pub fn report(key: &KeyInfo, json: bool) {
    if json {
        out!("{}", output::json(&KeyJson::from(key)));
    } else {
        out!("{}", key.handle);
        eprintln!("Use it in keepassxc-cli with --yubikey {}", output::keepassxc_address(key));
    }
}
