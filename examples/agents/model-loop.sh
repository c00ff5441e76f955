#!/bin/sh
# Runs as a member of cell timmy-config-262; CELL_ID and CELL_MEMBER come from Lazarus.
agent=${CELL_MEMBER#agent:}
attempt=1; error=""
while :; do
  pick=$(lazarus portfolio resolve --cell "$CELL_ID" --agent "$agent" --task-class code \
      --attempt "$attempt" ${error:+--after-error "$error"} --json) || { echo "gave up: $pick"; exit 1; }
  model=$(echo "$pick" | node -pe 'JSON.parse(require("fs").readFileSync(0)).model.model')
  sleep $(( $(echo "$pick" | node -pe 'JSON.parse(require("fs").readFileSync(0)).waitMs') / 1000 ))
  if call-model "$model"; then           # your call; exit codes mapped to error classes below
    lazarus portfolio report --cell "$CELL_ID" --model "$model" --outcome ok
    attempt=1; error=""                  # next task
  else
    case $? in 29) error=rate_limit ;; 124) error=timeout ;; 13) error=context_window ;; *) error=server_error ;; esac
    lazarus portfolio report --cell "$CELL_ID" --model "$model" --outcome "$error" --agent "$agent"
    attempt=$((attempt + 1))
  fi
done
