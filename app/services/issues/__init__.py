"""Problems: intake (the one way in), workflow actions, queries, photos and the 待分类 queue."""
