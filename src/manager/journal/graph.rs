//! The task graph log: each task submitted, the files it reads and the files
//! it writes, as a Graphviz `digraph` (`vine_enable_taskgraph_log`).

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::files::{File, FileKind};
use crate::task::Task;

/// The files already in the graph, so that each node is written once.
#[derive(Default)]
pub(crate) struct Graph {
    files: HashSet<u64>,
}

impl Graph {
    /// The lines for `task`: its node, the nodes of its files not yet in the
    /// graph, and an edge from each input and to each output.
    pub(crate) fn task(&mut self, task: &Task) -> String {
        let id = task.id();
        let mut lines = String::new();
        let _ = writeln!(lines, "\"task-{id}\" [label=\"{id}\"];");
        let (inputs, outputs) = match &task.extra {
            Some(e) => (&e.inputs[..], &e.outputs[..]),
            None => (&[][..], &[][..]),
        };
        for m in inputs.iter().chain(outputs) {
            let f = m.file.id();
            if self.files.insert(f) {
                let _ = writeln!(
                    lines,
                    "\"file-{f}\" [shape=box,label=\"{}\"];",
                    quoted(&label(&m.file))
                );
            }
        }
        for m in inputs {
            let _ = writeln!(lines, "\"file-{}\" -> \"task-{id}\";", m.file.id());
        }
        for m in outputs {
            let _ = writeln!(lines, "\"task-{id}\" -> \"file-{}\";", m.file.id());
        }
        lines
    }
}

/// What a file's node says: the last part of its path or URL, else its kind.
fn label(file: &File) -> String {
    match file.kind() {
        FileKind::Path(p) => p
            .file_name()
            .unwrap_or(p.as_os_str())
            .to_string_lossy()
            .into_owned(),
        FileKind::Url(u) => u
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(u)
            .to_owned(),
        FileKind::Buffer => "buffer".into(),
        FileKind::Temp => "temp".into(),
        FileKind::MiniTask { .. } => "mini task".into(),
    }
}

/// `text` inside a DOT double-quoted string: backslashes and quotes escaped,
/// line breaks and other control characters replaced by spaces.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_label_cannot_leave_its_string() {
        assert_eq!(quoted("a\"b\\c\nd"), "a\\\"b\\\\c d");
        assert_eq!(quoted("plain.txt"), "plain.txt");
    }
}
