"""Results: typed records, their collection into reports, Markdown, figures, the gate."""
