"""The reaper: finds stale branch stacks, destroys them safely, sweeps orphans, reports.

- :mod:`.policy` -- which stacks are stale and why (pure);
- :mod:`.executor` -- destroys them in parallel through their engines, with retries;
- :mod:`.orphans` -- resources of stacks no engine knows, deleted per service;
- :mod:`.report` -- what was reaped and kept, and why;
- :mod:`.run` -- one run end to end, with the safety rails.
"""
