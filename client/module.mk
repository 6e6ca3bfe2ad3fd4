# client: objects and programs this folder contributes (see the top-level Makefile).
