"""The reference face pipeline: preprocessing, SCRFD output layout and decode, detection."""
