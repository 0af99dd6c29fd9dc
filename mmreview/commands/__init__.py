"""One module per command group; each registers itself on `mmreview.cliapp.app`."""
