//! `backup`: one file or standard input into the store as a native-format backup (spec 5.3,
//! 5.8; 5.6.3 for the refusal when another device rotated the key).

use std::fs;
use std::time::Instant;

use e2ee_backup_client::Source;
use serde_json::json;

use super::BackupArgs;
use crate::failure::Failure;
use crate::output::{Report, rate};

pub fn backup(args: &BackupArgs) -> Result<Report, Failure> {
    let (mut client, _) = args.client.open()?;
    if args.file.is_dir() {
        return crate::snapshots::backup(&client, &args.file);
    }
    let name = match &args.name {
        Some(name) => name.clone(),
        None => args
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "backup".to_owned()),
    };
    let metadata = fs::metadata(&args.file)
        .map_err(|e| Failure::io(&format!("cannot read {}", args.file.display()), e))?;
    let plaintext = metadata.len();
    let empty = metadata.is_file() && plaintext == 0;
    if empty && !args.allow_empty {
        return Err(Failure::usage(
            "empty-backup",
            format!(
                "{} is empty: as the newest backup it would be restored instead of the real ones \
                 before it. Nothing was stored; pass --allow-empty to back it up anyway",
                args.file.display()
            ),
        ));
    }
    let started = Instant::now();
    let info = client.create_backup(Source::Path(&args.file), &name)?;
    let elapsed = started.elapsed();
    let mut lines = vec![format!(
        "backed up {} ({plaintext} bytes) as {name:?}: {} bytes encrypted (zstd) stored as {} \
         in {elapsed:.2?}, {}",
        args.file.display(),
        info.size,
        info.object,
        rate(plaintext, elapsed)
    )];
    let mut json = json!({
        "file": args.file, "name": name, "plaintextBytes": plaintext, "object": info.object,
        "objectBytes": info.size, "seconds": elapsed.as_secs_f64(),
    });
    if empty {
        let warning = "warning: this backup is empty, and a restore picks it over the older ones";
        lines.push(warning.to_owned());
        json["warning"] = json!(warning);
    }
    Ok(Report { lines, json })
}
