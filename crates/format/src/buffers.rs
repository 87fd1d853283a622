//! Record buffers kept for the next stream on the same thread: memory reuse under the record
//! streams of spec section 3.4, which change no byte they read or write.
//!
//! A new [`ChunkWriter`](crate::chunks::ChunkWriter) or [`ChunkReader`](crate::chunks::ChunkReader)
//! needs about a megabyte of record buffer. A fresh allocation of that size is mapped, faulted
//! in and zeroed page by page by the kernel, and then filled with zeros again by `resize`:
//! for a 1 MiB file that costs as much as sealing it. So a stream's buffers are handed back
//! here when it is dropped and the next stream on the thread takes them, their length (bytes
//! already initialised) kept, so that they are neither faulted in nor zeroed again.
//!
//! What they hold when handed back (ciphertext, or plaintext of a stream in progress) stays
//! in this process, as it would in the allocator's free lists; nothing here is keying material.

use std::cell::RefCell;

/// Buffers kept per thread: a writer holds two, a reader one.
const KEPT: usize = 4;
/// Largest buffer kept, in bytes: a full batch of the largest chunks (4 MiB) and its records.
const KEPT_BYTES: usize = 8 << 20;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A record buffer that goes back to this thread's free list when dropped (if the list has
/// room and the buffer is not too large).
pub(crate) struct Kept(Vec<u8>);

impl Kept {
    /// A buffer from this thread's free list, or a new empty one.
    pub(crate) fn take() -> Self {
        Self(FREE.with(|free| free.borrow_mut().pop()).unwrap_or_default())
    }
}

impl std::ops::Deref for Kept {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Kept {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if buf.capacity() == 0 || buf.capacity() > KEPT_BYTES {
            return;
        }
        // A thread being torn down has no list any more: then the buffer is simply dropped.
        let _ = FREE.try_with(|free| {
            let mut free = free.borrow_mut();
            if free.len() < KEPT {
                free.push(buf);
            }
        });
    }
}
