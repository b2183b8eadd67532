"""Last stage of the flow: results.json, manifest.json, report.md and plots in the workdir."""
