"""Export's pure logic: who may be transferred, what a transfer record holds, and what the Nordic side
must hold given export's state and ledger. No I/O; plain functions over pydantic models and dataclasses."""
