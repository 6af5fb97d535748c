"""The validator and inspection device agent for BoB mobile tickets (MTBs)."""
