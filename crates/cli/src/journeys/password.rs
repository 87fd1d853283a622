//! `change-password` and `rotate-key` (spec 5.3, 5.6.2).

use std::time::Instant;

use e2ee_backup_client::Mode;
use serde_json::json;

use super::{
    ChangePasswordArgs, NEW_PASSWORD_ENV, PASSWORD_ENV, RotateKeyArgs, key_id, key_warning,
    mode_name, read_password,
};
use crate::failure::Failure;
use crate::output::Report;

pub fn change_password(args: &ChangePasswordArgs) -> Result<Report, Failure> {
    let (mut client, _) = args.client.open()?;
    let status = client.status();
    if !matches!(status.mode, Mode::Password { .. }) {
        return Err(Failure::usage(
            "illegal-state",
            format!(
                "there is no password to change: the client is in {} mode",
                mode_name(&status.mode)
            ),
        ));
    }
    let old =
        read_password(args.password_file.as_deref(), PASSWORD_ENV, "Current password: ", false)?;
    let new =
        read_password(args.new_password_file.as_deref(), NEW_PASSWORD_ENV, "New password: ", true)?;
    let started = Instant::now();
    client.change_password(&old, &new)?;
    let elapsed = started.elapsed();
    Ok(Report {
        lines: vec![format!(
            "password changed in {elapsed:.2?}: the old one no longer opens the vault; the \
             backup key and the backups are unchanged"
        )],
        json: json!({ "changed": true, "seconds": elapsed.as_secs_f64() }),
    })
}

pub fn rotate_key(args: &RotateKeyArgs) -> Result<Report, Failure> {
    let RotateKeyArgs { full, inner: args } = args;
    let (mut client, _) = args.client.open()?;
    let status = client.status();
    let password = match status.mode {
        Mode::Password { .. } => {
            Some(read_password(args.password_file.as_deref(), PASSWORD_ENV, "Password: ", false)?)
        }
        _ => None,
    };
    let started = Instant::now();
    let report = client.rotate_key_with(password.as_ref().map(|p| p.as_str()), *full)?;
    let elapsed = started.elapsed();
    let status = client.status();
    let password_mode = matches!(status.mode, Mode::Password { .. });
    let mut lines = vec![format!(
        "rotated the backup key in {elapsed:.2?}: {} backup(s) re-encrypted under the new key, \
         the old copies deleted{}",
        report.reencrypted,
        if password_mode { ", and the vault now seals the new key" } else { "" }
    )];
    if *full {
        lines.push(format!(
            "{} snapshot(s) re-encrypted under the new key, and {} blob(s) under a new media \
             root key: the old key opens no media of these snapshots any more",
            report.snapshots_rekeyed, report.blobs_rekeyed
        ));
    } else if report.snapshots_rekeyed > 0 {
        lines.push(format!(
            "{} snapshot(s) re-encrypted under the new key (their media is unchanged)",
            report.snapshots_rekeyed
        ));
    }
    for damaged in &report.damaged {
        lines.push(format!(
            "warning: {damaged} is damaged; it was left as it is and is unreadable from now on"
        ));
    }
    let mut json = json!({
        "mode": mode_name(&status.mode), "keyId": key_id(&status.mode),
        "reencrypted": report.reencrypted, "damaged": report.damaged,
        "snapshotsRekeyed": report.snapshots_rekeyed,
        "blobsRekeyed": report.blobs_rekeyed,
        "seconds": elapsed.as_secs_f64(),
    });
    if !password_mode {
        // In key mode the old digits open nothing any more: the new ones must be shown.
        lines.extend([
            "The old 64-digit key no longer opens any backup. The new one:".to_owned(),
            String::new(),
            format!("    {}", report.digits.as_str()),
            String::new(),
        ]);
        lines.extend(key_warning().map(str::to_owned));
        json["key"] = json!(report.digits.as_str());
    }
    Ok(Report { lines, json })
}
