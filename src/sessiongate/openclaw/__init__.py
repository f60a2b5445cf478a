"""Coming over from OpenClaw: read its session store (and speak its protocols)."""
