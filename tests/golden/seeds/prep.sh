#!/bin/sh
# a shell job script
echo "prep $*"
