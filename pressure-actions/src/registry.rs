//! A registry of named, prioritised services (storages, actions), like the original's service registry.

use std::sync::Arc;

/// Named items with priorities: `kind` resolves to the highest priority, `kind:name` to a named one.
///
/// Registering a name again replaces the earlier entry, so an embedder can swap a built-in.
#[derive(Debug)]
pub struct Registry<T: ?Sized> {
    kind: &'static str,
    entries: Vec<Entry<T>>,
}

#[derive(Debug)]
struct Entry<T: ?Sized> {
    name: String,
    priority: i32,
    item: Arc<T>,
}

impl<T: ?Sized> Clone for Registry<T> {
    fn clone(&self) -> Self {
        Registry {
            kind: self.kind,
            entries: self
                .entries
                .iter()
                .map(|e| Entry {
                    name: e.name.clone(),
                    priority: e.priority,
                    item: Arc::clone(&e.item),
                })
                .collect(),
        }
    }
}

impl<T: ?Sized> Registry<T> {
    /// An empty registry of services of `kind` (`storage`, `action`).
    pub fn new(kind: &'static str) -> Self {
        Registry {
            kind,
            entries: Vec::new(),
        }
    }

    /// Adds (or replaces) `name` with `priority`; higher priorities win and run first.
    pub fn register(&mut self, name: impl Into<String>, priority: i32, item: Arc<T>) {
        let name = name.into();
        self.entries.retain(|e| e.name != name);
        self.entries.push(Entry {
            name,
            priority,
            item,
        });
        // Stable: equal priorities keep registration order.
        self.entries.sort_by_key(|e| std::cmp::Reverse(e.priority));
    }

    /// Resolves `kind` (the highest priority) or `kind:name` (that one).
    pub fn resolve(&self, spec: &str) -> Option<Arc<T>> {
        match spec.split_once(':') {
            Some((kind, name)) if kind == self.kind => self.get(name),
            None if spec == self.kind => self.entries.first().map(|e| Arc::clone(&e.item)),
            _ => None,
        }
    }

    /// The item registered as `name`.
    pub fn get(&self, name: &str) -> Option<Arc<T>> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| Arc::clone(&e.item))
    }

    /// Names and items, highest priority first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, &Arc<T>)> {
        self.entries
            .iter()
            .map(|e| (e.name.as_str(), e.priority, &e.item))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_priority_wins_and_names_resolve() {
        let mut r: Registry<str> = Registry::new("storage");
        r.register("local", 50, Arc::from("L"));
        r.register("s3", 100, Arc::from("S"));
        r.register("mine", 10, Arc::from("M"));
        assert_eq!(&*r.resolve("storage").unwrap(), "S");
        assert_eq!(&*r.resolve("storage:local").unwrap(), "L");
        assert_eq!(&*r.resolve("storage:mine").unwrap(), "M");
        assert!(r.resolve("storage:nope").is_none());
        assert!(r.resolve("action").is_none());
        r.register("mine", 200, Arc::from("M2"));
        assert_eq!(&*r.resolve("storage").unwrap(), "M2");
        assert_eq!(r.len(), 3);
        let names: Vec<_> = r.iter().map(|(n, _, _)| n).collect();
        assert_eq!(names, ["mine", "s3", "local"]);
    }
}
