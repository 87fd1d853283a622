//! Snapshots of whole directories (spec chapter 8): `backup DIR`, `snapshots`, `restore
//! --snapshot ID --to DIR [PATHS...]`, `verify`, `forget` and `prune`, over the client's store
//! and current key.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use e2ee_backup_client::Client;
use e2ee_backup_client::scratch::RestoreStaging;
use e2ee_backup_snapshot::{BackupOptions, Excludes, ForgetPolicy, PruneReport};
use serde_json::json;

use crate::failure::Failure;
use crate::journeys::ClientArgs;
use crate::output::{Report, rate};

#[derive(Args)]
pub struct VerifyArgs {
    /// The snapshot to check. [default: the newest]
    #[arg(long, value_name = "ID")]
    pub snapshot: Option<String>,
    /// Also download, decrypt and authenticate every blob (nothing is written); without it,
    /// only that every blob is in the store.
    #[arg(long)]
    pub read_data: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct ForgetArgs {
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the N most recent days (UTC) that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_daily: u32,
    /// Keep the newest snapshot of each of the N most recent weeks (Monday to Sunday, UTC)
    /// that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_weekly: u32,
    /// Keep the newest snapshot of each of the N most recent months (UTC) that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_monthly: u32,
    /// Only say which snapshots would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Then prune: delete the blobs no snapshot references (see `prune`).
    #[arg(long, conflicts_with = "dry_run")]
    pub prune: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `ID`, or the newest snapshot for `None` and `latest`.
fn resolve(client: &Client, id: Option<&str>) -> Result<String, Failure> {
    match id {
        Some(id) if id != "latest" => Ok(id.to_owned()),
        _ => client.with_snapshots("find the newest snapshot", |s| s.latest())?.ok_or_else(|| {
            Failure::with_exit(
                "no-snapshot-found",
                "the store holds no snapshot: make one with `e2ee-backup backup DIR`".to_owned(),
                1,
            )
        }),
    }
}

/// The exclusion patterns of `backup DIR`: each `--exclude`, then each line of each
/// `--exclude-file` (spec 8.7). A bad pattern exits 2 (`invalid-pattern`) before anything is
/// read or written.
pub fn excludes(patterns: &[String], files: &[PathBuf]) -> Result<Excludes, Failure> {
    let mut all = patterns.to_vec();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Failure::io(&format!("read the exclude file {}", file.display()), e))?;
        all.extend(Excludes::parse_file(&text));
    }
    Excludes::new(&all).map_err(|err| Failure::with_exit(err.code(), err.to_string(), 2))
}

/// How `backup DIR` runs: `--uploads`, `--force`.
pub struct DirOptions {
    pub uploads: usize,
    pub force: bool,
}

/// `backup DIR`: a new snapshot of the tree.
pub fn backup(
    client: &Client,
    dir: &Path,
    excludes: Excludes,
    how: DirOptions,
) -> Result<Report, Failure> {
    let started = Instant::now();
    let options = BackupOptions {
        excludes,
        progress: crate::output::snapshot_progress(),
        uploads: how.uploads,
        // `--force` reads every file, then writes the cache anew from what it read.
        files_cache: Some(client.files_cache_path()),
    };
    if how.force {
        let _ = std::fs::remove_file(client.files_cache_path());
    }
    let report = client.with_snapshots("make a snapshot", |s| s.backup_with(dir, &options));
    // The bar goes before the report's lines.
    drop(options);
    let report = report?;
    let elapsed = started.elapsed();
    let mut lines = vec![
        format!(
            "snapshot {} of {}: {} file(s), {} dir(s), {} link(s), {} bytes in {elapsed:.2?}, {}",
            report.id,
            dir.display(),
            report.files,
            report.dirs,
            report.symlinks,
            report.bytes,
            rate(report.bytes, elapsed)
        ),
        format!(
            "uploaded {} new blob(s) ({} bytes); reused {} ({} bytes); {} unchanged file(s) not read",
            report.new_blobs,
            report.new_bytes,
            report.reused_blobs,
            report.reused_bytes,
            report.unchanged_files
        ),
    ];
    if report.excluded > 0 {
        lines.push(format!("left out {} path(s) an exclusion pattern matches", report.excluded));
    }
    for skipped in &report.skipped {
        lines.push(format!("skipped {skipped:?}: not a file, directory or link"));
    }
    let json = json!({
        "snapshot": report.id, "dir": dir, "files": report.files, "dirs": report.dirs,
        "symlinks": report.symlinks, "bytes": report.bytes, "newBlobs": report.new_blobs,
        "newBytes": report.new_bytes, "reusedBlobs": report.reused_blobs,
        "reusedBytes": report.reused_bytes, "skipped": report.skipped,
        "excluded": report.excluded, "unchangedFiles": report.unchanged_files,
        "seconds": elapsed.as_secs_f64(),
    });
    Ok(Report { lines, json })
}

/// `snapshots`: every snapshot, oldest first.
pub fn list(args: &crate::journeys::ClientOnlyArgs) -> Result<Report, Failure> {
    let (client, _) = args.client.open()?;
    let listed = client.with_snapshots("list snapshots", |s| s.list())?;
    let mut lines = Vec::new();
    if listed.is_empty() {
        lines.push("no snapshot yet".to_owned());
    }
    for info in &listed {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(info.created_at);
        lines.push(format!(
            "{}  {}  {} file(s)  {} bytes  {} new bytes",
            info.id,
            humantime::format_rfc3339_seconds(time),
            info.files,
            info.total_size,
            info.new_bytes
        ));
    }
    let json = json!({
        "snapshots": listed.iter().map(|i| json!({
            "id": i.id, "createdAt": i.created_at, "files": i.files,
            "totalBytes": i.total_size, "newBytes": i.new_bytes,
        })).collect::<Vec<_>>(),
    });
    Ok(Report { lines, json })
}

/// `restore --snapshot ID --to DIR [PATHS...] [--resume]`.
pub fn restore(
    client_args: &ClientArgs,
    id: &str,
    target: &Path,
    paths: &[String],
    resume: bool,
) -> Result<Report, Failure> {
    let (client, _) = client_args.open()?;
    let id = resolve(&client, Some(id))?;
    let prefixes: Vec<&str> = paths.iter().map(|p| p.trim_end_matches('/')).collect();
    let started = Instant::now();
    let staging = RestoreStaging::default();
    let report = client.with_snapshots("restore a snapshot", |s| {
        if resume {
            s.resume_restore(&id, target, &prefixes, &staging)
        } else {
            s.restore(&id, target, &prefixes, &staging)
        }
    })?;
    let elapsed = started.elapsed();
    let mut lines = vec![format!(
        "restored snapshot {id} into {}: {} file(s), {} dir(s), {} link(s), {} bytes in \
         {elapsed:.2?}",
        target.display(),
        report.files,
        report.dirs,
        report.symlinks,
        report.bytes
    )];
    if resume {
        lines.push(format!("kept {} file(s) a stopped restore had finished", report.kept_files));
    }
    for link in &report.skipped_links {
        lines.push(format!(
            "skipped link {link:?}: its target could lead outside {}",
            target.display()
        ));
    }
    let json = json!({
        "snapshot": id, "to": target, "files": report.files, "dirs": report.dirs,
        "symlinks": report.symlinks, "bytes": report.bytes, "keptFiles": report.kept_files,
        "skippedLinks": report.skipped_links, "seconds": elapsed.as_secs_f64(),
    });
    Ok(Report { lines, json })
}

/// `verify [--snapshot ID] [--read-data]`: fails (exit 4) when a blob is missing or damaged.
pub fn verify(args: &VerifyArgs) -> Result<Report, Failure> {
    let (client, _) = args.client.open()?;
    let id = resolve(&client, args.snapshot.as_deref())?;
    let started = Instant::now();
    let report = client.with_snapshots("verify a snapshot", |s| s.verify(&id, args.read_data))?;
    let elapsed = started.elapsed();
    if let Some(first) = report.problems.first() {
        let mut failure = Failure::with_exit(
            "snapshot-damaged",
            format!(
                "snapshot {id}: {} of {} blob(s) failed; the first: {first}",
                report.problems.len(),
                report.blobs
            ),
            4,
        );
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| json!({ "code": p.code(), "message": p.to_string() }))
            .collect();
        failure = failure.field("problems", problems);
        return Err(failure);
    }
    let what = if args.read_data { "read and authenticated" } else { "present" };
    let lines = vec![format!(
        "snapshot {id}: all {} blob(s) {what}{}",
        report.blobs,
        if args.read_data {
            format!(" ({} bytes, {})", report.bytes_read, rate(report.bytes_read, elapsed))
        } else {
            String::new()
        }
    )];
    let json = json!({
        "snapshot": id, "blobs": report.blobs, "readData": args.read_data,
        "bytesRead": report.bytes_read, "seconds": elapsed.as_secs_f64(),
    });
    Ok(Report { lines, json })
}

/// `forget --keep-… N [--dry-run] [--prune]`: removes the snapshots the policy does not keep
/// (spec 8.12.1); a policy that keeps nothing exits 2 (`empty-policy`).
pub fn forget(args: &ForgetArgs) -> Result<Report, Failure> {
    let (client, _) = args.client.open()?;
    let policy = ForgetPolicy {
        keep_last: args.keep_last,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
    };
    let report = client.with_snapshots("forget snapshots", |s| s.forget(&policy, args.dry_run))?;
    let verb = if args.dry_run { "would remove" } else { "removed" };
    let mut lines =
        vec![format!("{verb} {} snapshot(s), kept {}", report.removed.len(), report.kept.len())];
    lines.extend(report.removed.iter().map(|id| format!("{verb} {id}")));
    let mut json = json!({
        "dryRun": report.dry_run, "removed": report.removed, "kept": report.kept,
    });
    if args.prune {
        let pruned = client.with_snapshots("prune blobs", |s| s.prune())?;
        lines.extend(prune_lines(&pruned));
        json["prune"] = prune_json(&pruned);
    }
    Ok(Report { lines, json })
}

/// `prune`: deletes the blobs no snapshot references, in two phases a grace period apart
/// (spec 8.12.2).
pub fn prune(args: &crate::journeys::ClientOnlyArgs) -> Result<Report, Failure> {
    let (client, _) = args.client.open()?;
    let report = client.with_snapshots("prune blobs", |s| s.prune())?;
    Ok(Report { lines: prune_lines(&report), json: prune_json(&report) })
}

fn rfc3339(micros: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros);
    humantime::format_rfc3339_seconds(time).to_string()
}

fn prune_lines(report: &PruneReport) -> Vec<String> {
    let mut lines = vec![format!(
        "{} blob(s) in the store, {} referenced; deleted {}",
        report.blobs,
        report.referenced,
        report.deleted.len()
    )];
    if report.live_holds > 0 {
        lines.push(format!(
            "{} backup(s) in progress: nothing deleted; prune again once they are over",
            report.live_holds
        ));
    }
    if report.out_of_time {
        lines.push("stopped before deleting everything it could: prune again".to_owned());
    }
    if let Some(after) = report.sweep_after {
        lines.push(format!(
            "{} unreferenced blob(s) recorded: a prune after {} deletes those still unreferenced",
            report.candidates,
            rfc3339(after)
        ));
    }
    lines
}

fn prune_json(report: &PruneReport) -> serde_json::Value {
    json!({
        "blobs": report.blobs, "referenced": report.referenced, "deleted": report.deleted,
        "candidates": report.candidates,
        "sweepAfter": report.sweep_after.map(rfc3339),
        "backupsInProgress": report.live_holds, "staleRecordsRemoved": report.stale_removed,
        "outOfTime": report.out_of_time,
    })
}
