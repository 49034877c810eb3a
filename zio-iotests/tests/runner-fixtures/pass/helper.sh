#!/usr/bin/env bash
# Not a test: there is no helper.sh.out.
exit 1
