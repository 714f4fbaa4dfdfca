"""What energy costs: tariffs (``tariffs``: parsed and priced per bucket) and the pricing of
days and periods the dashboard and the logger's live values share (``pricing``)."""
