"""What the theory predicts from a table alone: L*, S̄, P_F (:mod:`.reference`) and the NTP-SVM
solution L^mm with its factors (:mod:`.svm`) (``docs/paper.md`` §1.4–1.8)."""
