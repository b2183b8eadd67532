def get_config(:
