//! Report rows as table cells, shared by the CSV writer and the HTML renderer: each row
//! type says once how it becomes cells ([`TableRow::cells`]), and each output picks the
//! columns it shows by name. A flag is written `true`/`false` in CSV and `yes`/`no` in HTML.

/// One cell of a report table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Text(String),
    Flag(bool),
}

impl Cell {
    /// As a CSV field: flags are `true` / `false`.
    pub(crate) fn into_csv(self) -> String {
        match self {
            Cell::Text(s) => s,
            Cell::Flag(b) => b.to_string(),
        }
    }

    /// As HTML cell text (before escaping): flags are `yes` / `no`.
    pub(crate) fn into_html(self) -> String {
        match self {
            Cell::Text(s) => s,
            Cell::Flag(true) => "yes".into(),
            Cell::Flag(false) => "no".into(),
        }
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}

impl From<bool> for Cell {
    fn from(b: bool) -> Cell {
        Cell::Flag(b)
    }
}

/// A row of a report table.
pub(crate) trait TableRow {
    /// The column names, in the order of [`TableRow::cells`] (the k9 CSV names where the
    /// row is written to a CSV file).
    const COLUMNS: &'static [&'static str];

    /// This row's cells, one per entry of [`TableRow::COLUMNS`].
    fn cells(&self) -> Vec<Cell>;
}

/// Where each wanted column comes from: the row's cells (by index) or elsewhere (`None`).
pub(crate) fn projection<R: TableRow>(columns: &[&str]) -> Vec<Option<usize>> {
    columns
        .iter()
        .map(|c| R::COLUMNS.iter().position(|have| have == c))
        .collect()
}
