test: run
