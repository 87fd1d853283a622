//! Exclusion patterns of a backup (spec section 8.7, step 2): which entries of the tree the walk
//! leaves out.
//!
//! A pattern is a glob (the `globset` crate's syntax: `*`, `?`, `[…]`, `{a,b}`, `**`), matched
//! case-sensitively, with restic's meaning as far as it goes:
//!
//! * without a `/`, it matches the **name** of an entry at any depth: `*.tmp` leaves out every
//!   file or directory whose name ends in `.tmp`;
//! * with a `/` anywhere, it matches the entry's **path relative to the backed-up directory**:
//!   `*` and `?` do not cross a `/`, `**/` spans any number of directories; a leading and a
//!   trailing `/` are dropped, so `/cache`, `cache/` and `cache/x` all start at the top.
//!
//! An excluded directory is not descended: nothing below it is read, even what another rule
//! would keep.

use std::ffi::OsStr;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::{Error, Result};

/// The exclusion patterns of a backup; none by default.
#[derive(Debug, Clone)]
pub struct Excludes {
    /// Patterns without a `/`, matched against an entry's name.
    names: GlobSet,
    /// Patterns with a `/`, matched against an entry's relative path.
    paths: GlobSet,
    count: usize,
}

impl Default for Excludes {
    fn default() -> Self {
        Self { names: GlobSet::empty(), paths: GlobSet::empty(), count: 0 }
    }
}

impl Excludes {
    /// Compiles `patterns`; refuses (`invalid-pattern`) an empty one or one that is not a glob.
    pub fn new<I, P>(patterns: I) -> Result<Self>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        let mut count = 0;
        for pattern in patterns {
            let original = pattern.as_ref();
            let invalid = |why: String| Error::InvalidPattern { pattern: original.to_owned(), why };
            let trimmed = original.strip_suffix('/').unwrap_or(original);
            let trimmed = trimmed.strip_prefix('/').unwrap_or(trimmed);
            if trimmed.is_empty() {
                return Err(invalid("it matches nothing (empty)".to_owned()));
            }
            let glob = GlobBuilder::new(trimmed)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| invalid(e.kind().to_string()))?;
            if original.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
            count += 1;
        }
        let build = |set: GlobSetBuilder| {
            set.build().map_err(|e| Error::InvalidPattern {
                pattern: e.glob().unwrap_or_default().to_owned(),
                why: e.kind().to_string(),
            })
        };
        Ok(Self { names: build(names)?, paths: build(paths)?, count })
    }

    /// The patterns of an exclude file's text: one a line, surrounding blanks trimmed; empty
    /// lines and lines starting with `#` are skipped.
    pub fn parse_file(text: &str) -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    /// How many patterns there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the entry at `path`, relative to the backed-up directory (components joined by
    /// `/`), is left out. Its directories are not looked at: the walk never reaches an entry
    /// below an excluded directory.
    pub fn is_excluded(&self, path: &Path) -> bool {
        if self.count == 0 {
            return false;
        }
        let name = path.file_name().unwrap_or(OsStr::new(""));
        self.names.is_match(name) || self.paths.is_match(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excludes(patterns: &[&str]) -> Excludes {
        Excludes::new(patterns).unwrap()
    }

    fn out(excludes: &Excludes, path: &str) -> bool {
        excludes.is_excluded(Path::new(path))
    }

    #[test]
    fn a_pattern_without_a_slash_matches_a_name_at_any_depth() {
        let e = excludes(&["*.tmp", ".thumbnails", "cache?"]);
        assert!(out(&e, "a.tmp"));
        assert!(out(&e, "Media/Sent/b.tmp"));
        assert!(out(&e, "Media/.thumbnails"));
        assert!(out(&e, "cache1"));
        assert!(out(&e, "x/cacheZ"));
        assert!(!out(&e, "a.tmp.jpg"));
        assert!(!out(&e, "cache"));
        assert!(!out(&e, "cache12"));
        assert!(!out(&e, "Media/thumbnails"));
    }

    #[test]
    fn a_pattern_with_a_slash_matches_the_relative_path() {
        let e = excludes(&["Media/*.jpg", "/Backups", "Databases/**/*.wal", "logs/"]);
        assert!(out(&e, "Media/a.jpg"));
        assert!(!out(&e, "Media/Sent/a.jpg"), "* does not cross a /");
        assert!(!out(&e, "x/Media/a.jpg"), "anchored at the top");
        assert!(out(&e, "Backups"));
        assert!(!out(&e, "Media/Backups"), "a leading / anchors a plain name");
        assert!(out(&e, "Databases/msgstore.wal"), "**/ spans no directory too");
        assert!(out(&e, "Databases/a/b/c.wal"));
        assert!(out(&e, "logs"), "a trailing / is dropped");
        assert!(!out(&e, "x/logs"), "logs/ has a slash: a path pattern");
    }

    #[test]
    fn globs_have_classes_alternatives_and_escapes() {
        let e = excludes(&["*.{mp4,mkv}", "IMG_[0-9]*", "a\\*b"]);
        assert!(out(&e, "Video/v.mp4") && out(&e, "v.mkv") && !out(&e, "v.mp3"));
        assert!(out(&e, "IMG_2024.jpg") && !out(&e, "IMG_x.jpg"));
        assert!(out(&e, "a*b") && !out(&e, "axb"));
        assert!(!out(&excludes(&[]), "anything"));
        assert!(excludes(&[]).is_empty());
        assert_eq!(e.len(), 3);
    }

    #[test]
    fn a_bad_or_empty_pattern_is_refused() {
        for bad in ["", "/", "[a-", "{a,b"] {
            let err = Excludes::new([bad]).unwrap_err();
            assert_eq!(err.code(), "invalid-pattern", "{bad:?}");
        }
    }

    #[test]
    fn an_exclude_file_has_one_pattern_a_line_and_comments() {
        let text = "# media caches\n*.tmp\n\n  .thumbnails  \r\n#*.jpg\nMedia/Sent/*\n";
        assert_eq!(Excludes::parse_file(text), ["*.tmp", ".thumbnails", "Media/Sent/*"]);
    }
}
