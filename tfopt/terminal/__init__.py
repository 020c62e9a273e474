"""What the user sees and does while tfopt runs: captured output, progress events, SIGINT/SIGTERM."""
