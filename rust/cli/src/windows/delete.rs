//! `tpm-hmac delete`: a key's record and its key file. A database that needs the key opens no
//! more unless the key is imported again from its secret.

use crate::error::CliError;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    key: super::Target,
}

pub fn run(args: Args) -> Result<(), CliError> {
    match keepassxc_tpm::KeyFileTpm::delete_in(&super::records(), &args.key.key_file)? {
        None => eprintln!("Deleted {}.", args.key.key_file.display()),
        Some(left) => {
            eprintln!("Deleted the record; the file {} could not be removed: delete it by hand.", left.display())
        }
    }
    Ok(())
}
