"""Feature transforms: plain ``pd.DataFrame -> pd.DataFrame`` functions that Ray ``map_batches``/tasks run and
tests call directly. Generic building blocks (rolling, regimes, calendar, missing) and one module per
industry pipeline (turbofan C31, machining C29, semiconductor C26, steel C24, injection C22)."""
