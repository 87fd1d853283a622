//! `status`, `abort`, `set-store` and `set-vault`: what the client is set to, dropping an
//! operation that cannot finish, and changing the store or the vault later, checked
//! (spec 5.3, 5.3.1, 5.4, 5.6).

use e2ee_backup_client::state::STATE_FILE;
use e2ee_backup_client::{Client, Mode};
use serde_json::{Value, json};

use super::{
    ClientOnlyArgs, PASSWORD_ENV, PasswordOnlyArgs, SetStoreArgs, SetVaultArgs, check_vault_url,
    key_id, mode_name, not_set_up, read_password, read_pin,
};
use crate::failure::Failure;
use crate::output::Report;

pub fn status(args: &ClientOnlyArgs) -> Result<Report, Failure> {
    let dir = args.client.dir()?;
    if !dir.join(STATE_FILE).exists() {
        return Err(not_set_up(&dir).field("initialised", false).field("clientDir", json!(dir)));
    }
    let client = Client::open(&dir, args.client.options())?;
    let status = client.status();
    let backups = client.list_backups();
    let mode = mode_name(&status.mode);
    let mut lines = vec![
        format!("client dir:   {}", dir.display()),
        format!("account:      {}", status.account),
        format!(
            "mode:         {mode}{}",
            key_id(&status.mode).map(|id| format!(" (key id {id})")).unwrap_or_default()
        ),
    ];
    if let Mode::Restoring { target, .. } = &status.mode {
        lines.push(format!(
            "restoring:    into {} (run `e2ee-backup restore` again to finish)",
            target.display()
        ));
    }
    lines.push(format!(
        "pending:      {}",
        status.pending.map_or("none".to_owned(), |p| format!(
            "an interrupted {p} (run it again to finish it, or `e2ee-backup abort`)"
        ))
    ));
    lines.push(format!("backup store: {}", status.store));
    lines.push(format!(
        "vault:        {}",
        match (&status.vault_url, status.last_seen_epoch) {
            (Some(url), Some(epoch)) => format!("{url} (fleet key bundle epoch {epoch})"),
            (Some(url), None) => format!("{url} (not contacted yet)"),
            (None, _) => "none (key mode only)".to_owned(),
        }
    ));
    let mut json = json!({
        "initialised": true, "clientDir": dir, "account": status.account, "mode": mode,
        "keyId": key_id(&status.mode), "pending": status.pending, "store": status.store,
        "vault": status.vault_url, "lastSeenEpoch": status.last_seen_epoch,
    });
    match backups {
        Ok(names) => {
            lines.push(format!(
                "backups:      {}{}",
                names.len(),
                names.last().map(|n| format!(" (newest {n})")).unwrap_or_default()
            ));
            json["backups"] = json!(names.len());
            json["newestBackup"] = json!(names.last());
        }
        Err(err) => {
            lines.push(format!("backups:      unknown ({err})"));
            json["backupsError"] = json!(err.to_string());
        }
    }
    Ok(Report { lines, json })
}

pub fn abort(args: &PasswordOnlyArgs) -> Result<Report, Failure> {
    let (mut client, _) = args.client.open()?;
    let Some(pending) = client.status().pending else {
        return Ok(Report {
            lines: vec!["nothing to abort: no operation was interrupted".to_owned()],
            json: json!({ "aborted": Value::Null }),
        });
    };
    // A rotation cut off while asking the vault to seal the new key: only a login tells
    // whether the vault still seals the old key.
    let password = if client.abort_needs_password() {
        Some(read_password(args.password_file.as_deref(), PASSWORD_ENV, "Password: ", false)?)
    } else {
        None
    };
    client.abort_pending(password.as_ref().map(|p| p.as_str()))?;
    Ok(Report {
        lines: vec![format!("dropped the interrupted {pending}")],
        json: json!({ "aborted": pending }),
    })
}

pub fn set_store(args: &SetStoreArgs) -> Result<Report, Failure> {
    let (mut client, _) = args.client.open()?;
    let count = client.set_store(&args.store)?;
    let status = client.status();
    Ok(Report {
        lines: vec![format!(
            "this client now keeps its backups in {}: {count} backup(s) there",
            status.store
        )],
        json: json!({ "store": status.store, "backups": count }),
    })
}

pub fn set_vault(args: &SetVaultArgs) -> Result<Report, Failure> {
    check_vault_url(&args.vault)?;
    let pin = read_pin(&args.pin)?;
    let (mut client, _) = args.client.open()?;
    let epoch = client.set_vault(&args.vault, pin)?;
    let status = client.status();
    let url = status.vault_url.unwrap_or_default();
    Ok(Report {
        lines: vec![format!(
            "this client now uses the vault at {url}: its key bundle (epoch {epoch}) verifies \
             against {}",
            args.pin.display()
        )],
        json: json!({ "vault": url, "epoch": epoch, "pin": args.pin }),
    })
}
