"""Files people attach to messages: what kind they are (`kinds`), what the bot accepts
(`limits`), how they are fetched (`download`), uploaded once to the Files API (`uploads`),
shown to Claude (`blocks`) and tied together for the conversation (`service`)."""
