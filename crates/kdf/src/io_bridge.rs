//! Carrying a typed error through `std::io` and back.
//!
//! The native format (spec chapter 3) and crypt15 (spec chapter 6) stream through `Read` and
//! `Write`, whose methods can only return [`io::Error`]. Each crate's error enum has an `Io`
//! variant for failures of the operating system and implements [`IoCarried`] (with
//! [`carry_through_io!`](crate::carry_through_io)); these three functions then do the round
//! trip the same way in both crates: a format or crypt15 error
//! rides inside an `io::Error` of kind `InvalidData` and comes back out unchanged, an operating
//! system error keeps its kind.

use std::io;

/// An error enum that can ride inside an [`io::Error`].
pub trait IoCarried: std::error::Error + Clone + Send + Sync + 'static {
    /// The enum's variant for an operating-system failure.
    fn from_os(kind: io::ErrorKind, message: String) -> Self;
    /// The kind and message of that variant, or the error itself if it is another one.
    fn into_os(self) -> Result<(io::ErrorKind, String), Self>;
}

/// Implements [`IoCarried`], both `From` conversions with [`std::io::Error`], and the inherent
/// `from_io` and `from_io_error` for an error enum whose operating-system variant is
/// `Io { kind: std::io::ErrorKind, message: String }`; `$what` names the error in their docs.
#[macro_export]
macro_rules! carry_through_io {
    ($error:ty, $what:literal) => {
        impl $error {
            #[doc = concat!("The ", $what, " error inside an [`std::io::Error`] returned by the")]
            /// streaming types' `Read` or `Write` implementation, if that is what it carries.
            pub fn from_io(err: &::std::io::Error) -> Option<&$error> {
                $crate::io_bridge::carried(err)
            }

            #[doc = concat!("Converts an [`std::io::Error`] back to the ", $what, " error it")]
            /// carries, or wraps it as its `Io` variant.
            pub fn from_io_error(err: ::std::io::Error) -> $error {
                $crate::io_bridge::from_io(err)
            }
        }

        impl $crate::io_bridge::IoCarried for $error {
            fn from_os(kind: ::std::io::ErrorKind, message: String) -> Self {
                Self::Io { kind, message }
            }

            fn into_os(self) -> Result<(::std::io::ErrorKind, String), Self> {
                match self {
                    Self::Io { kind, message } => Ok((kind, message)),
                    other => Err(other),
                }
            }
        }

        impl From<$error> for ::std::io::Error {
            fn from(err: $error) -> ::std::io::Error {
                $crate::io_bridge::into_io(err)
            }
        }

        impl From<::std::io::Error> for $error {
            fn from(err: ::std::io::Error) -> $error {
                $crate::io_bridge::from_io(err)
            }
        }
    };
}

/// The typed error inside `err`, if that is what it carries.
pub fn carried<E: IoCarried>(err: &io::Error) -> Option<&E> {
    err.get_ref()?.downcast_ref::<E>()
}

/// `err` back as the typed error it carries, or as the enum's operating-system variant.
pub fn from_io<E: IoCarried>(err: io::Error) -> E {
    match carried::<E>(&err) {
        Some(inner) => inner.clone(),
        None => E::from_os(err.kind(), err.to_string()),
    }
}

/// `err` as an [`io::Error`]: the operating-system variant with its own kind, any other error
/// carried whole with kind `InvalidData`.
pub fn into_io<E: IoCarried>(err: E) -> io::Error {
    match err.into_os() {
        Ok((kind, message)) => io::Error::new(kind, message),
        Err(other) => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    enum Sample {
        #[error("bad")]
        Bad,
        #[error("os: {1}")]
        Os(io::ErrorKind, String),
    }

    impl IoCarried for Sample {
        fn from_os(kind: io::ErrorKind, message: String) -> Self {
            Sample::Os(kind, message)
        }
        fn into_os(self) -> Result<(io::ErrorKind, String), Self> {
            match self {
                Sample::Os(kind, message) => Ok((kind, message)),
                other => Err(other),
            }
        }
    }

    #[test]
    fn typed_errors_survive_the_round_trip_and_os_errors_keep_their_kind() {
        let carried_bad = into_io(Sample::Bad);
        assert_eq!(carried_bad.kind(), io::ErrorKind::InvalidData);
        assert_eq!(carried::<Sample>(&carried_bad), Some(&Sample::Bad));
        assert_eq!(from_io::<Sample>(carried_bad), Sample::Bad);

        let os = into_io(Sample::Os(io::ErrorKind::PermissionDenied, "denied".into()));
        assert_eq!(os.kind(), io::ErrorKind::PermissionDenied);
        assert!(carried::<Sample>(&os).is_none());
        assert_eq!(
            from_io::<Sample>(os),
            Sample::Os(io::ErrorKind::PermissionDenied, "denied".into())
        );
    }
}
