# tests/hardening: the coordinator's HTTP limits, driven from bash.
.PHONY: test-hardening
test-hardening: $(BIN)/coordinator $(BIN)/meshreq
	$(Q)BIN=$(BIN) timeout -k 10 120 bash tests/hardening/t-hardening.sh
