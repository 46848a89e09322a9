"""The command line as a user meets it: options, bad input, exit codes, what reaches the terminal."""
