__version__ = "0.1.0"

# the command line's exit codes: success, bad input (path, position, file), engine unavailable
EXIT_OK, EXIT_BAD_INPUT, EXIT_ENGINE = 0, 2, 3
