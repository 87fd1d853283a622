//! `disable`: backups off, the vault record deleted in password mode (spec 5.3).

use std::io::{self, BufRead, IsTerminal, Write};

use e2ee_backup_client::Mode;
use serde_json::json;

use super::{DisableArgs, PASSWORD_ENV, read_password};
use crate::failure::Failure;
use crate::output::Report;

pub fn disable(args: &DisableArgs) -> Result<Report, Failure> {
    let (mut client, _) = args.inner.client.open()?;
    let status = client.status();
    if matches!(status.mode, Mode::Off) && status.pending.is_none() {
        return Err(Failure::usage("illegal-state", "backups are already off here"));
    }
    let count = client.list_backups().map(|names| names.len()).unwrap_or(0);
    let password_mode = matches!(status.mode, Mode::Password { .. });
    if !args.yes {
        if !io::stdin().is_terminal() {
            return Err(Failure::usage(
                "not-confirmed",
                "turning backups off deletes every backup; pass --yes to confirm",
            ));
        }
        eprint!(
            "This deletes the {count} backup(s) in {}{} and forgets the backup key. Type 'yes' \
             to continue: ",
            status.store,
            if password_mode { ", and the key sealed in the vault," } else { "" }
        );
        io::stderr().flush().ok();
        let mut answer = String::new();
        io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| Failure::io("cannot read the answer", e))?;
        if answer.trim() != "yes" {
            return Err(Failure::usage("not-confirmed", "nothing was changed"));
        }
    }
    let password = if password_mode {
        Some(read_password(args.inner.password_file.as_deref(), PASSWORD_ENV, "Password: ", false)?)
    } else {
        None
    };
    let report = client.disable(password.as_ref().map(|p| p.as_str()))?;
    Ok(Report {
        lines: vec![format!(
            "backups are off: {} backup(s) and {} snapshot(s) deleted{}, the backup key \
             forgotten on this device",
            report.deleted_backups,
            report.deleted_snapshots,
            if report.vault_record_deleted { ", the vault's copy of the key deleted" } else { "" }
        )],
        json: json!({
            "deletedBackups": report.deleted_backups,
            "deletedSnapshots": report.deleted_snapshots,
            "vaultRecordDeleted": report.vault_record_deleted,
        }),
    })
}
