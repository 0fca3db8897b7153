//! The requests known to be decided, by UID: a decision is immutable, so a later event
//! showing one of them undecided is stale (a watch running behind this replica's own
//! write) and must not start another signature. Bounded; the oldest are forgotten first.

use std::collections::{HashSet, VecDeque};

/// How many decided UIDs are remembered.
const CAPACITY: usize = 65_536;

#[derive(Default)]
pub struct Decided {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Decided {
    /// Remembers `uid` (an empty one, which no real object has, is not remembered).
    pub fn insert(&mut self, uid: &str) {
        if uid.is_empty() || !self.set.insert(uid.to_owned()) {
            return;
        }
        self.order.push_back(uid.to_owned());
        while self.order.len() > CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    pub fn contains(&self, uid: &str) -> bool {
        !uid.is_empty() && self.set.contains(uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_decided_uids_up_to_its_bound() {
        let mut d = Decided::default();
        for i in 0..CAPACITY + 1 {
            d.insert(&i.to_string());
        }
        assert!(!d.contains("0"));
        assert!(d.contains("1"));
        assert!(d.contains(&CAPACITY.to_string()));
        d.insert("");
        assert!(!d.contains(""));
    }
}
