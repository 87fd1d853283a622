//! `restore`: the newest backup onto a new device or in place, with the 64 digits or the
//! password (spec 5.5; 5.6 for resuming one that was cut off).

use std::path::PathBuf;
use std::time::Instant;

use e2ee_backup_client::{Mode, RestoreReport, Status};
use e2ee_backup_kdf::digits;
use serde_json::json;

use super::{
    Needs, PASSWORD_ENV, Prepared, RestoreArgs, key_id, mode_name, prepare, read_password,
    saving_only_on_success,
};
use crate::commands;
use crate::failure::{EXIT_LOCKED_OUT, Failure};
use crate::output::{Report, is_stdio, rate};

pub fn restore(args: &RestoreArgs) -> Result<Report, Failure> {
    if let Some(id) = &args.snapshot {
        return crate::snapshots::restore(&args.client, id, &args.to, &args.paths, args.resume);
    }
    let with_key = args.key.is_some() || args.key_file.is_some();
    let needs = if with_key { Needs::Key } else { Needs::Password };
    let (dir, prepared) = prepare(&args.client, &args.setup, needs)?;
    saving_only_on_success(dir, prepared, |dir, prepared| restore_in(args, needs, dir, prepared))
}

fn restore_in(
    args: &RestoreArgs,
    needs: Needs,
    dir: PathBuf,
    prepared: Prepared,
) -> Result<Report, Failure> {
    let mut lines = Vec::new();
    let mut target = args.to.clone();
    let started;
    let mut client;
    // A restore in place: the key backups were made with until now.
    let held = prepared.status().and_then(|s| match s.mode {
        Mode::Key { key_id } | Mode::Password { key_id } => Some(key_id),
        _ => None,
    });
    let report = match prepared.status().map(|s| s.mode) {
        Some(Mode::Restoring { target: stored, .. }) => {
            // An interrupted restore finishes with the key it already has: no second login.
            lines.push(format!("resuming the interrupted restore into {}", stored.display()));
            target = stored;
            client = prepared.into_client(&args.client, &dir)?;
            started = Instant::now();
            client.resume_restore()?
        }
        Some(Mode::LockedOut { .. }) if needs == Needs::Password => {
            return Err(Failure::with_exit(
                "locked-out",
                "this account is locked out for good: the vault destroyed its copy of the \
                 backup key, so no password restores it. Restore with --key if you have the \
                 64-digit key.",
                EXIT_LOCKED_OUT,
            )
            .field("retryable", false));
        }
        _ if is_stdio(&args.to) => {
            // Standard output: written as each chunk verifies, so not resumable (spec 5.5).
            let mut out = std::io::stdout().lock();
            match needs {
                Needs::Key => {
                    let shown = key_digits(args)?;
                    client = prepared.into_client(&args.client, &dir)?;
                    started = Instant::now();
                    client.restore_with_key_to_writer(&shown, &mut out)?
                }
                Needs::Password => {
                    let password = restore_password(args)?;
                    client = prepared.into_client(&args.client, &dir)?;
                    started = Instant::now();
                    client.restore_with_password_to_writer(&password, &mut out)?
                }
            }
        }
        _ => {
            if !args.force && args.to.exists() {
                return Err(Failure::usage(
                    "output-exists",
                    format!("{} exists; pass --force to replace it", args.to.display()),
                ));
            }
            match needs {
                Needs::Key => {
                    let shown = key_digits(args)?;
                    client = prepared.into_client(&args.client, &dir)?;
                    started = Instant::now();
                    client.restore_with_key(&shown, &args.to)?
                }
                Needs::Password => {
                    let password = restore_password(args)?;
                    client = prepared.into_client(&args.client, &dir)?;
                    started = Instant::now();
                    client.restore_with_password(&password, &args.to)?
                }
            }
        }
    };
    let elapsed = started.elapsed();
    let status = client.status();
    lines.push(restored_line(&report, &status, elapsed));
    if report.skipped_other_key > 0 {
        lines.push(format!(
            "({} newer backup(s) were made with another key and skipped)",
            report.skipped_other_key
        ));
    }
    let now = key_id(&status.mode);
    let key_changed = held.is_some() && held.as_deref() != now;
    if let (true, Some(held), Some(now)) = (key_changed, &held, now) {
        lines.push(format!(
            "this client's backup key changed from key id {held} to the restored backup's, {now} \
             (another device rotated it): new backups use it"
        ));
    }
    Ok(Report {
        lines,
        json: json!({
            "to": target, "object": report.object, "name": report.name,
            "plaintextBytes": report.bytes, "skippedOtherKey": report.skipped_other_key,
            "mode": mode_name(&status.mode), "keyId": now, "keyChanged": key_changed,
            "clientDir": dir, "seconds": elapsed.as_secs_f64(),
        }),
    })
}

/// The 64 digits from --key or --key-file (asked at the terminal when --key has no value).
fn key_digits(args: &RestoreArgs) -> Result<zeroize::Zeroizing<String>, Failure> {
    let text = args.key.as_deref().filter(|t| !t.is_empty());
    let key = commands::required(commands::key_from(args.key_file.as_deref(), text, true))?;
    Ok(digits::to_display(&key))
}

fn restore_password(args: &RestoreArgs) -> Result<zeroize::Zeroizing<String>, Failure> {
    read_password(args.password_file.as_deref(), PASSWORD_ENV, "Password: ", false)
}

fn restored_line(report: &RestoreReport, status: &Status, elapsed: std::time::Duration) -> String {
    let name = report.name.as_deref().unwrap_or("(unnamed)");
    format!(
        "restored backup {name:?} ({} bytes, {}) in {elapsed:.2?}, {}; every chunk verified. This \
         client is now in {} mode: new backups use the same key",
        report.bytes,
        report.object,
        rate(report.bytes, elapsed),
        mode_name(&status.mode)
    )
}
