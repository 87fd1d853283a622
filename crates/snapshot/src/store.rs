//! The store a snapshot set lives in (spec section 8.3): five operations over named objects,
//! so that the logic above it is tested in memory and runs on any object store.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No object has that name.
    #[error("no such object")]
    NotFound,
    /// A create-only put found the name taken.
    #[error("the object already exists")]
    AlreadyExists,
    /// Anything else the store reports.
    #[error("{0}")]
    Other(String),
}

/// Named objects: the operations snapshots need. Names are `/`-separated, relative to the
/// store's root. Shared by reference between a backup's upload threads (section 8.7), hence
/// `Sync`.
pub trait Store: Sync {
    /// Stores `bytes` under `name`, atomically: readers see the whole object or none. With
    /// `create_only`, fails with [`StoreError::AlreadyExists`] if the name is taken.
    fn put(&self, name: &str, bytes: Vec<u8>, create_only: bool) -> Result<(), StoreError>;
    /// The object's bytes, or [`StoreError::NotFound`].
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError>;
    /// Every object name that starts with `prefix`, at any depth, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Whether an object has that name.
    fn exists(&self, name: &str) -> Result<bool, StoreError>;
    /// Removes an object; one already gone is not an error.
    fn delete(&self, name: &str) -> Result<(), StoreError>;
}

/// A store in memory that records every put, for tests and tools.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    puts: Mutex<Vec<String>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The names of all successful puts so far, in order.
    pub fn puts(&self) -> Vec<String> {
        self.puts.lock().expect("not poisoned").clone()
    }

    /// How many successful puts named an object under `prefix`.
    pub fn puts_under(&self, prefix: &str) -> usize {
        self.puts().iter().filter(|n| n.starts_with(prefix)).count()
    }

    /// Replaces or adds an object directly, bypassing the put log (to damage a store in tests).
    pub fn set_raw(&self, name: &str, bytes: Vec<u8>) {
        self.objects.lock().expect("not poisoned").insert(name.to_owned(), bytes);
    }
}

impl Store for MemoryStore {
    fn put(&self, name: &str, bytes: Vec<u8>, create_only: bool) -> Result<(), StoreError> {
        let mut objects = self.objects.lock().expect("not poisoned");
        if create_only && objects.contains_key(name) {
            return Err(StoreError::AlreadyExists);
        }
        objects.insert(name.to_owned(), bytes);
        self.puts.lock().expect("not poisoned").push(name.to_owned());
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.objects.lock().expect("not poisoned").get(name).cloned().ok_or(StoreError::NotFound)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let objects = self.objects.lock().expect("not poisoned");
        Ok(objects.keys().filter(|n| n.starts_with(prefix)).cloned().collect())
    }

    fn exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.objects.lock().expect("not poisoned").contains_key(name))
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.objects.lock().expect("not poisoned").remove(name);
        Ok(())
    }
}
