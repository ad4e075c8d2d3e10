"""What the theory predicts from a table alone: L*, S̄, P_F (:mod:`.reference`), the NTP-SVM
solution L^mm with its factors (:mod:`.svm`) and the linear model's W*, separability and W^mm
(:mod:`.linear`), the cvxpy solves of both through one layer (:mod:`.conic`)
(``docs/paper.md`` §1.4–1.9)."""
