"""`prunelens view`: rankings of the same chains side by side in one self-contained HTML page."""
