# tests/cli: the programs' command lines (CONTRACT sections 1 and 3).
.PHONY: test-cli
test-cli: $(BIN)/coordinator
	$(Q)BIN=$(BIN) timeout -k 5 60 bash tests/cli/t-coordinator-cli.sh
