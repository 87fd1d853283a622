//! Path rules (spec section 8.4): what a snapshot may name, and which links a restore makes.

/// Largest path length in bytes.
pub const MAX_PATH_LEN: usize = 4096;

/// Checks a relative path of a snapshot: non-empty UTF-8 of at most 4096 bytes, `/`-separated
/// components none of which is empty, `.` or `..`, and no NUL or backslash anywhere (so that
/// it names the same place on every system and never one outside the root).
pub fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.len() > MAX_PATH_LEN {
        return Err("longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    if path.contains('\0') {
        return Err("contains NUL");
    }
    if path.contains('\\') {
        return Err("contains a backslash");
    }
    for component in path.split('/') {
        match component {
            "" => return Err("empty component"),
            "." => return Err("`.` component"),
            ".." => return Err("`..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks that a link target stays inside the restore directory whatever other links it
/// goes through: a relative path by the rules of [`check_path`], so that it only ever
/// descends from the link's own directory (`.` and `..` are refused).
pub fn check_link_target(target: &str) -> Result<(), &'static str> {
    check_path(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names_and_refuses_escapes() {
        for ok in ["a", "a b/c", "Ünïcødé/🙂.jpg", "..a", "a..", ".hidden"] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "./a", "a/..", "..", "a\\b", "a\0b"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_path(&"a".repeat(4097)).is_err());
    }
}
