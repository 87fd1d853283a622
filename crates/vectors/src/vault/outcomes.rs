//! The vocabulary names of outcomes and errors (the closed list of the spec README's "Test
//! vectors", and the refusal codes of spec 4.7).

use super::*;

// The closed vocabulary of spec section 4.14: every error and outcome a vault vector names.

pub(super) fn channel_error(e: &ChannelError) -> String {
    e.code().to_owned()
}

pub(super) fn hsm_error(e: &HsmError) -> String {
    match e {
        HsmError::Channel(c) => channel_error(c),
        _ => "internal".to_owned(),
    }
}

pub(super) fn client_error(e: &ClientError) -> Result<String, String> {
    match e {
        ClientError::WrongPassword { remaining } => {
            Ok(format!("wrong-password remaining={remaining}"))
        }
        ClientError::Locked => Ok("locked".into()),
        ClientError::Exhausted => Ok("exhausted".into()),
        ClientError::Refused { reason, remaining } => {
            Ok(format!("refused {} remaining={remaining}", reason.name()))
        }
        other => Err(format!("unexpected client error {other:?}")),
    }
}

pub(super) fn response_outcome(response: &Response) -> String {
    match response {
        Response::Refused { reason, remaining } => {
            format!("refused {} remaining={remaining}", reason.name())
        }
        Response::Deleted => "deleted".to_owned(),
        Response::Registered { budget } => format!("registered budget={budget}"),
        other => format!("unexpected response {other:?}"),
    }
}

pub(super) fn refusal(response: &Response) -> Option<String> {
    match response {
        Response::Refused { reason, .. } => Some(reason.name().to_owned()),
        _ => None,
    }
}

pub(super) fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
