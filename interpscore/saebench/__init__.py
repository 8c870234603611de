"""Exchange results with SAEBench: export our reports as its result files, import its files."""
