"""``tfopt convert``: plan, stages, results, manifest, stored state and the load -> freeze -> optimize pipeline."""
