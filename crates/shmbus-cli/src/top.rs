//! `top`: `ls`, refreshed, in a terminal UI (ratatui over crossterm); `q` or Esc quits. With
//! `--jsonl`, a stream of `shmbus.ls/1` documents instead, one per refresh.

use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::Constraint;
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Cell, Row, Table};

use crate::gather::{self, Listing};
use crate::out::{age, bytes, print_json, rate};
use crate::{Failure, Format, EXIT_ERROR};

/// Runs `top`.
pub fn run(prefix: &str, interval: Duration, count: u64, fmt: Format) -> Result<(), Failure> {
    if fmt.json || fmt.jsonl {
        let mut n = 0;
        while count == 0 || n < count {
            print_json(&crate::out::list_json(&gather::list(prefix, interval)))?;
            n += 1;
        }
        return Ok(());
    }
    let mut terminal = ratatui::try_init()
        .map_err(|e| Failure::new(EXIT_ERROR, format!("top: cannot set up the terminal: {e}")))?;
    let result = ui(&mut terminal, prefix, interval, count);
    ratatui::restore();
    result
}

/// Whether a key asks to quit.
fn quit(ev: &Event) -> bool {
    match ev {
        Event::Key(k) if k.kind == KeyEventKind::Press => {
            matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
                || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL))
        }
        _ => false,
    }
}

fn ui(
    terminal: &mut ratatui::DefaultTerminal,
    prefix: &str,
    interval: Duration,
    count: u64,
) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::new(EXIT_ERROR, format!("top: terminal: {e}"));
    // The first frame at once, without rates; each later one after an interval of sampling.
    let mut listing: Listing = gather::list(prefix, Duration::ZERO);
    let mut n = 0u64;
    loop {
        terminal
            .draw(|f| f.render_widget(view(&listing, prefix, interval), f.area()))
            .map_err(io)?;
        if count != 0 && n >= count {
            return Ok(());
        }
        let mut stop = false;
        // Sample the rates over one interval, answering keys meanwhile.
        let next = gather::list_with(prefix, interval, || {
            match event::poll(Duration::from_millis(1)) {
                Ok(true) => match event::read() {
                    Ok(ev) if quit(&ev) => stop = true,
                    _ => {}
                },
                Ok(false) => {}
                Err(_) => stop = true,
            }
            !stop
        });
        match next {
            Some(l) => listing = l,
            None => return Ok(()),
        }
        n += 1;
    }
}

fn view<'a>(l: &'a Listing, prefix: &str, interval: Duration) -> Table<'a> {
    let header = Row::new([
        "NAME", "KIND", "TYPE", "CAPACITY", "FILL", "PUB a/d", "SUB a/d", "MSG/S", "BYTES/S",
        "AGE", "STATE",
    ])
    .style(
        Style::default()
            .add_modifier(Modifier::BOLD)
            .fg(Color::Cyan),
    );
    let rows = l.rows.iter().map(|r| {
        if let Some(e) = &r.error {
            return Row::new(vec![
                Cell::from(r.name.clone()),
                Cell::from("?"),
                Cell::from(format!("error: {e}")).style(Style::default().fg(Color::Red)),
            ]);
        }
        let dead = |t: gather::Tally| {
            let c = Cell::from(format!("{}/{}", t.alive, t.dead));
            if t.dead > 0 {
                c.style(Style::default().fg(Color::Red))
            } else {
                c
            }
        };
        Row::new(vec![
            Cell::from(r.name.clone()),
            Cell::from(r.kind),
            Cell::from(r.type_name.clone()),
            Cell::from(
                r.capacity
                    .map_or_else(|| bytes(r.data_bytes), |c| format!("{c} msgs")),
            ),
            Cell::from(format!("{:.1}%", r.fill_pct())),
            dead(r.producers),
            dead(r.consumers),
            Cell::from(rate(r.msg_rate)),
            Cell::from(rate(r.byte_rate)),
            Cell::from(age(r.age_s)),
            if r.stale {
                Cell::from("stale").style(Style::default().fg(Color::Yellow))
            } else {
                Cell::from("ok").style(Style::default().fg(Color::Green))
            },
        ])
    });
    let widths = [
        Constraint::Min(20),
        Constraint::Length(4),
        Constraint::Min(10),
        Constraint::Length(11),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(6),
    ];
    let title = format!(
        " shmbus top — {} segment(s){}, refresh {:.1} s — q quits ",
        l.rows.len(),
        if prefix.is_empty() {
            String::new()
        } else {
            format!(" under {prefix}")
        },
        interval.as_secs_f64()
    );
    Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(title))
}
