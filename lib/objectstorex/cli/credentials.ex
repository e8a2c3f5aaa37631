defmodule ObjectStoreX.CLI.Credentials do
  @moduledoc false
  # The stores of the `mix objectstorex.*` tasks, built from a location's URL and the
  # providers' standard environment variables, with a credential check before any request,
  # and the removal of secret values from every message the tasks print.

  alias ObjectStoreX.CLI.Location
  alias ObjectStoreX.Error

  @doc """
  The store a location lives in, built from its URL and the provider's standard environment
  variables. Missing credentials are reported before any request is made: without them,
  object_store would ask the cloud's instance-metadata endpoint.
  """
  @spec open(Location.t()) :: {:ok, ObjectStoreX.Store.t()} | {:error, String.t()}
  def open(%{kind: :path} = loc), do: open(Location.as_store(loc))
  def open(%{scheme: "memory"}), do: {:ok, memory_store()}

  def open(%{scheme: scheme, provider: provider, store_opts: opts} = loc) do
    # An http:// URL asks for plain HTTP; the HTTP store has no environment variable to say so.
    opts = if scheme == "http", do: [{:allow_http, true} | opts], else: opts

    with :ok <- check(provider(scheme), loc) do
      case ObjectStoreX.new(provider, opts) do
        {:ok, store} -> {:ok, store}
        {:error, %Error{message: message}} -> {:error, "#{Location.display(loc)}: #{message}"}
      end
    end
  end

  # memory:// is one store for the whole run (e.g. `mix do objectstorex.cp a memory://x,
  # objectstorex.cp memory://x b`), not a new empty one per argument.
  defp memory_store do
    case :persistent_term.get({__MODULE__, :memory}, nil) do
      nil ->
        store = ObjectStoreX.new!(:memory)
        :persistent_term.put({__MODULE__, :memory}, store)
        store

      store ->
        store
    end
  end

  defp provider(scheme) when scheme in ["s3", "s3a"], do: :s3
  defp provider("gs"), do: :gcs
  defp provider(scheme) when scheme in ["az", "azure", "abfs", "abfss"], do: :azure
  defp provider(_), do: :other

  @allow_metadata "OBJECTSTOREX_ALLOW_INSTANCE_METADATA"

  @doc """
  `:ok` when the environment holds credentials for `provider` (or instance metadata is
  allowed), else a message naming what to set.
  """
  @spec check(atom(), Location.t()) :: :ok | {:error, String.t()}
  def check(provider, loc) do
    cond do
      provider == :other -> :ok
      truthy?(@allow_metadata) -> :ok
      credentials?(provider, loc) -> :ok
      true -> {:error, "#{Location.display(loc)}: #{missing_credentials(provider, loc)}"}
    end
  end

  defp credentials?(:s3, _loc) do
    any?(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]) or
      all?(["AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"]) or
      any?(["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"]) or
      truthy?("AWS_SKIP_SIGNATURE")
  end

  defp credentials?(:gcs, _loc) do
    any?([
      "GOOGLE_SERVICE_ACCOUNT",
      "GOOGLE_SERVICE_ACCOUNT_PATH",
      "SERVICE_ACCOUNT",
      "GOOGLE_SERVICE_ACCOUNT_KEY",
      "GOOGLE_APPLICATION_CREDENTIALS"
    ]) or truthy?("GOOGLE_SKIP_SIGNATURE") or gcloud_default_credentials?()
  end

  defp credentials?(:azure, loc) do
    truthy?("AZURE_STORAGE_USE_EMULATOR") or
      (azure_account?(loc) and
         (any?([
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_ACCESS_KEY",
            "AZURE_STORAGE_MASTER_KEY",
            "AZURE_STORAGE_SAS_KEY",
            "AZURE_STORAGE_SAS_TOKEN",
            "AZURE_STORAGE_TOKEN"
          ]) or
            (any?(["AZURE_CLIENT_ID", "AZURE_STORAGE_CLIENT_ID"]) and
               any?(["AZURE_TENANT_ID", "AZURE_STORAGE_TENANT_ID", "AZURE_AUTHORITY_ID"]) and
               any?([
                 "AZURE_CLIENT_SECRET",
                 "AZURE_STORAGE_CLIENT_SECRET",
                 "AZURE_FEDERATED_TOKEN_FILE"
               ])) or
            truthy?("AZURE_USE_AZURE_CLI") or truthy?("AZURE_SKIP_SIGNATURE")))
  end

  defp azure_account?(%{scheme: scheme}) when scheme in ["abfs", "abfss"], do: true
  defp azure_account?(_loc), do: any?(["AZURE_STORAGE_ACCOUNT_NAME"])

  defp gcloud_default_credentials? do
    case System.get_env("HOME") do
      nil ->
        false

      home ->
        File.regular?(Path.join(home, ".config/gcloud/application_default_credentials.json"))
    end
  end

  defp missing_credentials(:s3, _loc) do
    "no AWS credentials in the environment: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY " <>
      "(and AWS_SESSION_TOKEN for temporary ones), AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, " <>
      "or AWS_SKIP_SIGNATURE=true for a public bucket; " <> metadata_hint()
  end

  defp missing_credentials(:gcs, _loc) do
    "no Google Cloud credentials in the environment: set GOOGLE_SERVICE_ACCOUNT (a key file), " <>
      "GOOGLE_SERVICE_ACCOUNT_KEY or GOOGLE_APPLICATION_CREDENTIALS, or " <>
      "GOOGLE_SKIP_SIGNATURE=true for a public bucket; " <> metadata_hint()
  end

  defp missing_credentials(:azure, loc) do
    if azure_account?(loc) do
      "no Azure credentials in the environment: set AZURE_STORAGE_ACCOUNT_KEY, " <>
        "AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_TOKEN, or AZURE_CLIENT_ID, AZURE_TENANT_ID " <>
        "and AZURE_CLIENT_SECRET (or AZURE_STORAGE_USE_EMULATOR=true for Azurite); " <>
        metadata_hint()
    else
      "no Azure storage account in the environment: set AZURE_STORAGE_ACCOUNT_NAME and a " <>
        "credential (AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN, ...), or " <>
        "AZURE_STORAGE_USE_EMULATOR=true for Azurite"
    end
  end

  defp metadata_hint do
    "on a cloud VM, #{@allow_metadata}=true lets the credentials come from its instance " <>
      "metadata service"
  end

  defp any?(vars), do: Enum.any?(vars, &set?/1)
  defp all?(vars), do: Enum.all?(vars, &set?/1)
  defp set?(var), do: (System.get_env(var) || "") != ""

  defp truthy?(var),
    do: String.downcase(System.get_env(var) || "") in ["true", "1", "yes", "on"]

  # Environment variables whose values are secrets. Their values are removed from every
  # message the tasks print, whatever produced the message.
  @secret_vars ~r/(SECRET|PASSWORD|TOKEN|SAS_KEY|ACCOUNT_KEY|ACCESS_KEY|MASTER_KEY|SERVICE_ACCOUNT_KEY|CUSTOMER_KEY)/

  @doc "Removes secret environment values and URL passwords from `text`."
  @spec redact(String.t()) :: String.t()
  def redact(text) do
    secrets =
      for {name, value} <- System.get_env(),
          String.match?(name, ~r/^(AWS|AZURE|GOOGLE)_/),
          not String.ends_with?(name, "_ID"),
          Regex.match?(@secret_vars, name),
          # A value this short is no secret worth the name, and replacing it would garble
          # ordinary words in the message.
          byte_size(value) >= 8,
          do: value

    secrets
    |> Enum.sort_by(&(-byte_size(&1)))
    |> Enum.reduce(redact_url(text), &String.replace(&2, &1, "[REDACTED]"))
  end

  @doc "Removes the user information (`user:password@`) from the URLs in `text`."
  @spec redact_url(String.t()) :: String.t()
  def redact_url(text), do: Regex.replace(~r{(://)[^/@\s]*:[^/@\s]*@}, text, "\\1[REDACTED]@")
end
