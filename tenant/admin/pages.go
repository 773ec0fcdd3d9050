package admin

import "github.com/gofiber/fiber/v2"

func (a *App) mountPages(g fiber.Router) {}
