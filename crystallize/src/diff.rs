//! Flattening JSON values into `path = value` pairs and comparing two of them: the engine behind
//! the drift guard of a resumed run and the `diff` of two conditions.

use serde_json::Value;

/// One leaf of a flattened value: `players[2].model` and its value.
pub type Leaf = (String, Value);

/// Flattens `value` into leaves in document order. Objects join keys with `.`, arrays use `[i]`;
/// an empty object or array is a leaf of its own so that it is not lost.
pub fn flatten(value: &Value) -> Vec<Leaf> {
    let mut leaves = Vec::new();
    walk(String::new(), value, &mut leaves);
    leaves
}

fn walk(path: String, value: &Value, leaves: &mut Vec<Leaf>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                walk(child_path, child, leaves);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, child) in items.iter().enumerate() {
                walk(format!("{path}[{index}]"), child, leaves);
            }
        }
        _ => leaves.push((path, value.clone())),
    }
}

/// A difference at one path.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The flattened path.
    pub path: String,
    /// The value on the left side, if the path exists there.
    pub left: Option<Value>,
    /// The value on the right side, if the path exists there.
    pub right: Option<Value>,
}

/// Every path whose value differs between `left` and `right`, in the order of `left` then the
/// paths only `right` has.
pub fn changes(left: &Value, right: &Value) -> Vec<Change> {
    let left = flatten(left);
    let right = flatten(right);
    let mut out = Vec::new();
    for (path, value) in &left {
        match right.iter().find(|(p, _)| p == path) {
            Some((_, other)) if other == value => {}
            Some((_, other)) => {
                out.push(Change { path: path.clone(), left: Some(value.clone()), right: Some(other.clone()) })
            }
            None => out.push(Change { path: path.clone(), left: Some(value.clone()), right: None }),
        }
    }
    for (path, value) in &right {
        if !left.iter().any(|(p, _)| p == path) {
            out.push(Change { path: path.clone(), left: None, right: Some(value.clone()) });
        }
    }
    out
}

/// Renders changes as `-`/`+` lines under each path.
#[cfg(test)]
pub fn render(changes: &[Change]) -> String {
    let mut out = String::new();
    for change in changes {
        out += &format!("  {}\n", change.path);
        if let Some(left) = &change.left {
            out += &format!("    - {left}\n");
        }
        if let Some(right) = &change.right {
            out += &format!("    + {right}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_nested_paths() {
        let leaves = flatten(&json!({"players": [{"model": "a"}, {"model": "b"}], "spoilers": false, "tags": []}));
        let paths: Vec<&str> = leaves.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["players[0].model", "players[1].model", "spoilers", "tags"]);
    }

    #[test]
    fn reports_changed_removed_and_added_paths() {
        let found = changes(&json!({"a": 1, "b": {"c": 2}, "d": 3}), &json!({"a": 1, "b": {"c": 5}, "e": 4}));
        assert_eq!(
            found,
            vec![
                Change { path: "b.c".into(), left: Some(json!(2)), right: Some(json!(5)) },
                Change { path: "d".into(), left: Some(json!(3)), right: None },
                Change { path: "e".into(), left: None, right: Some(json!(4)) },
            ]
        );
        assert_eq!(render(&found[..1]), "  b.c\n    - 2\n    + 5\n");
    }
}
