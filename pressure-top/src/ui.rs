//! The live terminal view: ratatui rendering of a [`TopModel`] and the loop that feeds it cycles
//! from a source and keys from the terminal (crossterm; no mouse, so it works over SSH and in tmux).

use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use pressure_core::Severity;
use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row as TableRow, Table};

use crate::model::{self, Action, COLUMNS, Entry, HEADERS, Key, SortKey, TopModel};

/// How long the loop waits for a key before it looks for a new cycle: the view shows a cycle at most
/// this late, and an idle view wakes this often.
const KEY_POLL: Duration = Duration::from_millis(100);

/// What a source sends the view.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Update {
    /// One poll cycle at clock `t` (seconds): every container the source knows.
    Cycle {
        /// Clock, seconds (any origin; only differences matter).
        t: f64,
        /// The containers.
        entries: Vec<Entry>,
    },
    /// The source is done (a replay reached its end) or failed; the view stays until quit and says so.
    Ended(String),
}

/// A terminal that could not be set up, drawn on or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopError {
    /// A terminal operation failed.
    #[error("terminal: {what}")]
    Terminal {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn term(what: &'static str) -> impl FnOnce(std::io::Error) -> TopError {
    move |source| TopError::Terminal { what, source }
}

/// Restores the terminal (raw mode off, main screen, cursor) however the view ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the live view on the terminal until `q` or Ctrl-C: draws `title` and the model's rows, redraws
/// on every cycle from `updates`, on a key and on a resize. When the source ends the view stays with
/// its last rows and the source's last word.
pub fn run(updates: Receiver<Update>, title: &str) -> Result<(), TopError> {
    let mut terminal = ratatui::try_init().map_err(term("entering raw mode"))?;
    let _restore = Restore;
    let mut model = TopModel::new();
    let mut note = String::new();
    let mut connected = true;
    let mut dirty = true;
    loop {
        if dirty {
            terminal
                .draw(|f| render(f, &model, title, &note))
                .map_err(term("drawing"))?;
            dirty = false;
        }
        if event::poll(KEY_POLL).map_err(term("waiting for a key"))? {
            match event::read().map_err(term("reading a key"))? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    let key = match k.code {
                        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                            Key::Interrupt
                        }
                        KeyCode::Char(c) => Key::Char(c),
                        KeyCode::Enter => Key::Enter,
                        KeyCode::Esc => Key::Esc,
                        KeyCode::Backspace => Key::Backspace,
                        _ => continue,
                    };
                    match model.key(key) {
                        Action::Quit => return Ok(()),
                        Action::Redraw => dirty = true,
                        _ => {}
                    }
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
        while connected {
            match updates.try_recv() {
                Ok(Update::Cycle { t, entries }) => {
                    model.update(t, entries);
                    dirty = true;
                }
                Ok(Update::Ended(text)) => {
                    note = text;
                    dirty = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    connected = false;
                    if note.is_empty() {
                        note = "source stopped".into();
                        dirty = true;
                    }
                }
            }
        }
    }
}

/// The colour of a severity.
fn colour(severity: Severity) -> Color {
    match severity {
        Severity::Critical => Color::Red,
        Severity::Warn => Color::Yellow,
        _ => Color::Green,
    }
}

/// Which column a sort key sorts by (the header marks it), if it is one column.
fn sort_column(key: SortKey) -> Option<usize> {
    Some(match key {
        SortKey::Name => 0,
        SortKey::WorkingSet => 1,
        SortKey::Percent => 3,
        SortKey::Trend => 4,
        SortKey::Eta => 5,
        SortKey::Kills => 7,
        _ => return None,
    })
}

/// A cell of column `i`: the numbers right-aligned, the name, the bar and the severity left.
fn aligned(i: usize, text: String) -> Cell<'static> {
    let line = Line::from(text);
    Cell::from(if matches!(i, 0 | 2) || i == COLUMNS - 1 {
        line
    } else {
        line.right_aligned()
    })
}

/// Draws the view: a title and status line, the table, a key help line.
pub fn render(frame: &mut Frame<'_>, model: &TopModel, title: &str, note: &str) {
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let mut status = vec![
        Span::styled(
            format!("{title}  "),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(model.status()),
    ];
    if !note.is_empty() {
        status.push(Span::styled(
            format!("  {note}"),
            Style::new().add_modifier(Modifier::ITALIC),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(status)), top);

    let marked = sort_column(model.sort());
    let header = TableRow::new(HEADERS.iter().enumerate().map(|(i, h)| {
        let text = if Some(i) == marked {
            format!("{h}▼")
        } else {
            (*h).to_owned()
        };
        aligned(i, text)
    }))
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED));
    let rows = model.rows().into_iter().map(|row| {
        let mut cells = model::cells(row);
        cells[2] = model::bar(row.entry.usage_ratio, model::BAR_WIDTH, '█', '░');
        let style = Style::new().fg(colour(row.entry.severity));
        TableRow::new(cells.into_iter().enumerate().map(|(i, c)| aligned(i, c))).style(style)
    });
    let widths: [Constraint; COLUMNS] = [
        Constraint::Min(24),
        Constraint::Length(18),
        Constraint::Length(model::BAR_WIDTH as u16),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(9),
    ];
    frame.render_widget(Table::new(rows, widths).header(header), body);
    let help = "s sort  / filter namespace  n next namespace  p pause  q quit";
    frame.render_widget(
        Paragraph::new(help).style(Style::new().add_modifier(Modifier::DIM)),
        bottom,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    #[test]
    fn renders_rows_coloured_by_severity_with_the_sort_column_marked() {
        let mut model = TopModel::new();
        let entry = |pod: &str, ws: u64, severity| Entry {
            key: pod.into(),
            namespace: "shop".into(),
            pod: pod.into(),
            container: "app".into(),
            working_set_bytes: Some(ws << 20),
            limit_bytes: Some(1000 << 20),
            usage_ratio: Some(ws as f64 / 1000.0),
            severity,
            eta_seconds: None,
            psi_some_avg10: Some(1.5),
            oom_kills: Some(1),
        };
        model.update(
            0.0,
            vec![
                entry("calm", 100, Severity::Ok),
                entry("hot", 900, Severity::Critical),
            ],
        );
        model.set_sort(SortKey::Percent);
        let mut terminal = Terminal::new(TestBackend::new(120, 6)).unwrap();
        terminal
            .draw(|f| render(f, &model, "pressured top", "replay ended"))
            .unwrap();
        let buffer = terminal.backend().buffer();
        let line = |y: u16| -> String {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol().to_owned())
                .collect()
        };
        assert!(
            line(0).contains("pressured top  2/2 containers  sort: percent"),
            "{}",
            line(0)
        );
        assert!(line(0).contains("replay ended"), "{}", line(0));
        assert!(line(1).contains("%▼"), "{}", line(1));
        assert!(line(2).starts_with("shop/hot/app"), "{}", line(2));
        assert!(line(2).contains("██████████████████░░"), "{}", line(2));
        assert!(line(3).starts_with("shop/calm/app"), "{}", line(3));
        assert_eq!(buffer[(0, 2)].fg, Color::Red);
        assert_eq!(buffer[(0, 3)].fg, Color::Green);
        assert!(line(5).contains("q quit"), "{}", line(5));
    }
}
