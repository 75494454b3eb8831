"""cachegate's hook in a team's project: installed through the generated settings module only."""
