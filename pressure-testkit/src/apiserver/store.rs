//! In-memory object store of the fake API server: objects, resource versions, a bounded change log
//! for watches, and the usage numbers the Summary API reports.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::resources::Resource;

/// What happened to an object, as a watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One entry of the change log.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) rv: u64,
    pub(crate) storage: &'static str,
    pub(crate) kind: ChangeKind,
    pub(crate) object: Arc<Value>,
}

/// Memory and CPU numbers one container reports through the Summary API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerUsage {
    /// `memory.workingSetBytes`.
    pub working_set_bytes: u64,
    /// `memory.usageBytes`; at least the working set.
    pub usage_bytes: u64,
    /// `memory.rssBytes`.
    pub rss_bytes: u64,
    /// `cpu.usageNanoCores`.
    pub cpu_nano_cores: u64,
}

impl ContainerUsage {
    /// Usage with the given working set; usage and RSS follow it.
    pub fn working_set(bytes: u64) -> Self {
        Self {
            working_set_bytes: bytes,
            usage_bytes: bytes + bytes / 8,
            rss_bytes: bytes - bytes / 16,
            cpu_nano_cores: 1_000_000,
        }
    }
}

/// Key of an object: storage name, namespace ("" for cluster-scoped) and name.
pub(crate) type Key = (&'static str, String, String);

pub(crate) struct Store {
    pub(crate) objects: BTreeMap<Key, Arc<Value>>,
    /// Pods by `spec.nodeName`, for the Summary API.
    pub(crate) node_pods: HashMap<String, std::collections::BTreeSet<Key>>,
    rv: u64,
    log: VecDeque<Change>,
    log_capacity: usize,
    /// Watches from a resourceVersion below this get `410 Expired`.
    pub(crate) floor: u64,
    uid_counter: u64,
    pub(crate) usage: HashMap<(String, String, String), ContainerUsage>,
    pub(crate) tx: broadcast::Sender<Arc<Change>>,
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl Store {
    pub(crate) fn new(log_capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            objects: BTreeMap::new(),
            node_pods: HashMap::new(),
            rv: 1000,
            log: VecDeque::new(),
            log_capacity: log_capacity.max(1),
            floor: 1000,
            uid_counter: 0,
            usage: HashMap::new(),
            tx,
        }
    }

    fn unindex(&mut self, key: &Key, old: &Value) {
        if key.0 == "pods"
            && let Some(node) = old.pointer("/spec/nodeName").and_then(Value::as_str)
            && let Some(set) = self.node_pods.get_mut(node)
        {
            set.remove(key);
        }
    }

    /// Stores an object, keeping the node index of pods.
    fn put(&mut self, key: Key, obj: Arc<Value>) {
        if let Some(old) = self.objects.get(&key).cloned() {
            self.unindex(&key, &old);
        }
        if key.0 == "pods"
            && let Some(node) = obj.pointer("/spec/nodeName").and_then(Value::as_str)
        {
            self.node_pods
                .entry(node.to_owned())
                .or_default()
                .insert(key.clone());
        }
        self.objects.insert(key, obj);
    }

    pub(crate) fn current_rv(&self) -> u64 {
        self.rv
    }

    /// Drops the whole change log, so every watch from an older resourceVersion gets `410 Expired`.
    pub(crate) fn compact(&mut self) {
        self.log.clear();
        self.floor = self.rv;
    }

    /// Changes after `rv` for one storage, or `None` when `rv` is older than the log reaches.
    pub(crate) fn changes_since(&self, storage: &str, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.floor {
            return None;
        }
        Some(
            self.log
                .iter()
                .filter(|c| c.rv > rv && c.storage == storage)
                .cloned()
                .map(Arc::new)
                .collect(),
        )
    }

    fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        let n = self.uid_counter;
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (t >> 16) as u32,
            (t & 0xffff) as u16,
            (n >> 12) & 0xfff,
            n & 0xfff,
            n ^ (t >> 20) & 0xffff_ffff_ffff
        )
    }

    fn record(&mut self, storage: &'static str, kind: ChangeKind, object: Arc<Value>) {
        let change = Change {
            rv: self.rv,
            storage,
            kind,
            object,
        };
        self.log.push_back(change.clone());
        while self.log.len() > self.log_capacity {
            if let Some(old) = self.log.pop_front() {
                self.floor = old.rv;
            }
        }
        // No receivers is fine: nobody watches yet.
        let _ = self.tx.send(Arc::new(change));
    }

    /// Fills server-set metadata of a new object: uid, creationTimestamp, resourceVersion.
    fn stamp_new(&mut self, res: &Resource, obj: &mut Value, namespace: &str) {
        if !obj.is_object() {
            *obj = json!({});
        }
        let uid = self.next_uid();
        let m = obj
            .as_object_mut()
            .map(|o| o.entry("metadata").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut);
        if let Some(m) = m {
            if m.get("uid")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                m.insert("uid".into(), Value::String(uid));
            }
            if m.get("creationTimestamp").and_then(Value::as_str).is_none() {
                m.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
            }
            if res.namespaced {
                m.insert("namespace".into(), Value::String(namespace.to_owned()));
            } else {
                m.remove("namespace");
            }
        }
        if let Some(o) = obj.as_object_mut() {
            o.insert(
                "apiVersion".into(),
                Value::String(res.storage_api_version().into()),
            );
            o.insert("kind".into(), Value::String(res.kind.into()));
        }
    }

    fn bump(&mut self, obj: &mut Value) {
        self.rv += 1;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        }
    }

    /// Inserts a new object; `Err` holds the existing one when the name is taken.
    pub(crate) fn create(
        &mut self,
        res: &Resource,
        namespace: &str,
        mut obj: Value,
    ) -> Result<Arc<Value>, StoreError> {
        self.stamp_new(res, &mut obj, namespace);
        let name = match meta_str(&obj, "name") {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => match meta_str(&obj, "generateName") {
                Some(prefix) => {
                    let suffix = self.next_uid();
                    let name = format!("{prefix}{}", &suffix[suffix.len() - 5..]);
                    set_meta(&mut obj, "name", Value::String(name.clone()));
                    name
                }
                None => return Err(StoreError::Invalid("metadata.name: Required value".into())),
            },
        };
        let key = (
            res.storage,
            if res.namespaced {
                namespace.to_owned()
            } else {
                String::new()
            },
            name,
        );
        if self.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        self.bump(&mut obj);
        let obj = Arc::new(obj);
        self.put(key, obj.clone());
        self.record(res.storage, ChangeKind::Added, obj.clone());
        Ok(obj)
    }

    /// Creates or replaces an object (test-side upsert; no resourceVersion check).
    pub(crate) fn upsert(&mut self, res: &Resource, obj: Value) -> Arc<Value> {
        let namespace = meta_str(&obj, "namespace").unwrap_or("default").to_owned();
        let name = meta_str(&obj, "name").unwrap_or_default().to_owned();
        let key = (
            res.storage,
            if res.namespaced {
                namespace.clone()
            } else {
                String::new()
            },
            name,
        );
        match self.objects.get(&key).cloned() {
            Some(old) => {
                let mut obj = obj;
                keep_server_fields(&old, &mut obj);
                self.replace_unchecked(key, obj)
            }
            None => match self.create(res, &namespace, obj) {
                Ok(o) => o,
                Err(_) => unreachable!("key checked absent above"),
            },
        }
    }

    /// Replaces an existing object, bumping its resourceVersion.
    pub(crate) fn replace_unchecked(&mut self, key: Key, mut obj: Value) -> Arc<Value> {
        self.bump(&mut obj);
        let obj = Arc::new(obj);
        let storage = key.0;
        self.put(key, obj.clone());
        self.record(storage, ChangeKind::Modified, obj.clone());
        obj
    }

    /// Replaces an object when `new`'s resourceVersion (if any) matches the stored one.
    pub(crate) fn update(&mut self, key: Key, mut new: Value) -> Result<Arc<Value>, StoreError> {
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or(StoreError::NotFound)?;
        if let Some(rv) = meta_str(&new, "resourceVersion")
            && !rv.is_empty()
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(StoreError::Conflict);
        }
        keep_server_fields(&old, &mut new);
        Ok(self.replace_unchecked(key, new))
    }

    pub(crate) fn delete(&mut self, key: &Key) -> Result<Arc<Value>, StoreError> {
        let old = self.objects.remove(key).ok_or(StoreError::NotFound)?;
        self.unindex(key, &old);
        let mut obj = (*old).clone();
        self.bump(&mut obj);
        let obj = Arc::new(obj);
        self.record(key.0, ChangeKind::Deleted, obj.clone());
        Ok(obj)
    }
}

/// Keeps fields clients may not change: uid, creationTimestamp, name, namespace.
fn keep_server_fields(old: &Value, new: &mut Value) {
    for f in ["uid", "creationTimestamp", "name", "namespace"] {
        if let Some(v) = old.get("metadata").and_then(|m| m.get(f)) {
            set_meta(new, f, v.clone());
        }
    }
    for f in ["apiVersion", "kind"] {
        if let (Some(v), Some(o)) = (old.get(f).cloned(), new.as_object_mut()) {
            o.insert(f.into(), v);
        }
    }
}

pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

pub(crate) fn set_meta(obj: &mut Value, field: &str, v: Value) {
    if let Some(o) = obj.as_object_mut() {
        let m = o
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = m.as_object_mut() {
            m.insert(field.into(), v);
        }
    }
}

#[derive(Debug)]
pub(crate) enum StoreError {
    NotFound,
    AlreadyExists,
    Conflict,
    Invalid(String),
}
