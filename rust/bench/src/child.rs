//! `keepassxc-tpm-bench child-bridge`: a fresh process that calls the bridge exactly as the
//! KeePassXC driver does (process-wide connection, TCTI from TPM2TOOLS_TCTI) and prints the
//! time of each call as JSON. Started by the benchmark for the KeePassXC path.

use std::time::Instant;

use keepassxc_tpm_bridge::testing::{challenge, list_keys, Status};

#[derive(clap::Args)]
pub struct Args {
    /// Calls made first, in order, comma-separated: `list`, `challenge` (empty: none)
    #[arg(long, default_value = "")]
    ops: String,
    /// The call repeated afterwards (warm)
    #[arg(long, default_value = "challenge")]
    warm_op: String,
    /// How often the warm call is repeated
    #[arg(long, default_value_t = 0)]
    warm: usize,
    /// The key's KeePassXC serial (its persistent handle)
    #[arg(long)]
    serial: u32,
    /// KeePassXC's challenge (unpadded), hex
    #[arg(long, default_value = "")]
    hex: String,
}

pub fn run(args: Args) -> Result<(), String> {
    let seed = hex::decode(&args.hex).map_err(|e| format!("--hex: {e}"))?;
    let mut response_hex = String::new();
    let mut call = |op: &str| -> Result<(), String> {
        match op {
            "list" => {
                let list = list_keys();
                if list.status != Status::Ok {
                    return Err(format!("list_keys: {:?} {}", list.status, list.message));
                }
            }
            "challenge" => {
                let mut response = [0u8; 64];
                let r = challenge(args.serial, 1, &seed, &mut response);
                if r.status != Status::Ok {
                    return Err(format!("challenge: {:?} {}", r.status, r.message));
                }
                response_hex = hex::encode(&response[..r.response_len]);
            }
            other => return Err(format!("unknown op {other}")),
        }
        Ok(())
    };
    let mut first = Vec::new();
    for op in args.ops.split(',').filter(|s| !s.is_empty()) {
        let t = Instant::now();
        call(op)?;
        first.push(t.elapsed().as_nanos() as u64);
    }
    let mut warm = Vec::with_capacity(args.warm);
    let cpu = crate::stats::process_cpu_ns();
    for _ in 0..args.warm {
        let t = Instant::now();
        call(&args.warm_op)?;
        warm.push(t.elapsed().as_nanos() as u64);
    }
    let warm_cpu_ns = crate::stats::process_cpu_ns() - cpu;
    println!(
        "{}",
        serde_json::json!({ "first_ns": first, "warm_ns": warm, "warm_cpu_ns": warm_cpu_ns, "response": response_hex })
    );
    Ok(())
}
