//! `enable`: key mode or password mode on a new client directory, and switching a set-up
//! client between the two with the same key (spec 5.2, 5.3; 5.3.2 for the vault's answers).

use std::path::{Path, PathBuf};
use std::time::Instant;

use e2ee_backup_client::state::STATE_FILE;
use e2ee_backup_client::{Client, Mode};
use serde_json::json;

use super::{
    DEFAULT_ACCOUNT, EnableArgs, Needs, PASSWORD_ENV, Prepared, SetupArgs, backup_count,
    check_setup, check_vault_url, key_id, key_warning, mode_name, prepare, read_password, read_pin,
    saving_only_on_success,
};
use crate::failure::Failure;
use crate::output::Report;

pub fn enable(args: &EnableArgs) -> Result<Report, Failure> {
    let needs = if args.key { Needs::Key } else { Needs::Password };
    if let Some(report) = switch(args, needs)? {
        return Ok(report);
    }
    let (dir, prepared) = prepare(&args.client, &args.setup, needs)?;
    saving_only_on_success(dir, prepared, |dir, prepared| enable_in(args, needs, dir, prepared))
}

fn enable_in(
    args: &EnableArgs,
    needs: Needs,
    dir: PathBuf,
    prepared: Prepared,
) -> Result<Report, Failure> {
    if needs == Needs::Key {
        let mut client = prepared.into_client(&args.client, &dir)?;
        let shown = client.enable_with_key()?;
        let status = client.status();
        let mut lines = vec![
            "Backups are on, in key mode. Your 64-digit backup key:".to_owned(),
            String::new(),
            format!("    {}", shown.as_str()),
            String::new(),
        ];
        lines.extend(key_warning().map(str::to_owned));
        return Ok(Report {
            lines,
            json: json!({
                "mode": "key", "key": shown.as_str(), "keyId": key_id(&status.mode),
                "clientDir": dir, "account": status.account, "store": status.store,
            }),
        });
    }
    if let Some(status) = prepared.status() {
        match (&status.mode, status.pending) {
            (Mode::Off, None | Some("password registration")) => {}
            (mode, _) => {
                return Err(Failure::usage(
                    "illegal-state",
                    format!(
                        "backups cannot be turned on with a password here: the client is in {} \
                         mode{}",
                        mode_name(mode),
                        if matches!(mode, Mode::LockedOut { .. }) {
                            " (the vault refuses a locked account for good; use --key)"
                        } else {
                            " (turn backups off first with `e2ee-backup disable`)"
                        }
                    ),
                ));
            }
        }
    }
    let password =
        read_password(args.password_file.as_deref(), PASSWORD_ENV, "New backup password: ", true)?;
    let mut client = prepared.into_client(&args.client, &dir)?;
    let started = Instant::now();
    client.enable_with_password(&password)?;
    let status = client.status();
    let elapsed = started.elapsed();
    Ok(Report {
        lines: vec![
            format!(
                "Backups are on, in password mode: the backup key is sealed in the vault at {} \
                 for account {} ({elapsed:.2?}).",
                status.vault_url.as_deref().unwrap_or("?"),
                status.account
            ),
            "Remember the password: it is the only way to restore on a new device, and each \
             wrong guess counts; when they run out the vault destroys the key."
                .to_owned(),
        ],
        json: json!({
            "mode": "password", "keyId": key_id(&status.mode), "clientDir": dir,
            "account": status.account, "store": status.store, "vault": status.vault_url,
            "seconds": elapsed.as_secs_f64(),
        }),
    })
}

/// `enable --password` on a key-mode client, or `enable --key` on a password-mode one: switches
/// modes with the same key, keeping every backup (spec 5.3, `switch_to_password` and
/// `switch_to_key`). `None` when the client directory is not in the mode to switch from.
fn switch(args: &EnableArgs, needs: Needs) -> Result<Option<Report>, Failure> {
    let dir = args.client.dir()?;
    if !dir.join(STATE_FILE).exists() {
        return Ok(None);
    }
    let mut client = Client::open(&dir, args.client.options())?;
    let status = client.status();
    match (needs, &status.mode, status.pending) {
        (Needs::Password, Mode::Key { .. }, None | Some("password registration")) => {
            switch_to_password(args, client, &dir).map(Some)
        }
        (Needs::Key, Mode::Password { .. }, None)
        | (Needs::Key, Mode::Key { .. }, Some("vault record deletion")) => {
            check_setup(&status, &args.setup, &dir)?;
            let password = read_password(
                args.password_file.as_deref(),
                PASSWORD_ENV,
                "Current password: ",
                false,
            )?;
            let shown = client.switch_to_key(&password)?;
            let status = client.status();
            let mut lines = vec![
                "Switched to key mode: the vault's copy of the key is deleted, every backup is \
                 kept. Your 64-digit backup key:"
                    .to_owned(),
                String::new(),
                format!("    {}", shown.as_str()),
                String::new(),
            ];
            lines.extend(key_warning().map(str::to_owned));
            Ok(Some(Report {
                lines,
                json: json!({
                    "mode": "key", "switched": true, "key": shown.as_str(),
                    "keyId": key_id(&status.mode), "clientDir": dir, "account": status.account,
                    "store": status.store, "backups": backup_count(&client),
                }),
            }))
        }
        _ => Ok(None),
    }
}

/// Key mode to password mode: the account and vault may be given here (each checked, and saved
/// even if the registration then fails), the store may not change.
fn switch_to_password(
    args: &EnableArgs,
    mut client: Client,
    dir: &Path,
) -> Result<Report, Failure> {
    let status = client.status();
    let same_store =
        SetupArgs { account: None, vault: None, pin: None, store: args.setup.store.clone() };
    check_setup(&status, &same_store, dir)?;
    let password =
        read_password(args.password_file.as_deref(), PASSWORD_ENV, "New backup password: ", true)?;
    if let Some(account) = &args.setup.account
        && *account != status.account
    {
        client.set_account(account)?;
    }
    if let (Some(url), Some(pin)) = (&args.setup.vault, &args.setup.pin) {
        check_vault_url(url)?;
        client.set_vault(url, read_pin(pin)?)?;
    }
    let status = client.status();
    if status.vault_url.is_none() {
        return Err(Failure::usage(
            "no-vault",
            "password mode needs a vault: pass --vault URL and --pin FILE (or run `e2ee-backup \
             set-vault` first)",
        ));
    }
    if status.account == DEFAULT_ACCOUNT && args.setup.account.is_none() {
        return Err(Failure::usage(
            "missing-setup",
            "this client was set up without an account: pass --account ID (the account the \
             vault keeps the key under)",
        ));
    }
    let started = Instant::now();
    client.switch_to_password(&password)?;
    let elapsed = started.elapsed();
    let status = client.status();
    Ok(Report {
        lines: vec![
            format!(
                "Switched to password mode with the same backup key: it is sealed in the vault \
                 at {} for account {} ({elapsed:.2?}); every backup is kept.",
                status.vault_url.as_deref().unwrap_or("?"),
                status.account
            ),
            "Remember the password: it restores on a new device, as the 64-digit key still \
             does; each wrong guess counts, and when they run out the vault destroys its copy."
                .to_owned(),
        ],
        json: json!({
            "mode": "password", "switched": true, "keyId": key_id(&status.mode),
            "clientDir": dir, "account": status.account, "store": status.store,
            "vault": status.vault_url, "backups": backup_count(&client),
            "seconds": elapsed.as_secs_f64(),
        }),
    })
}
